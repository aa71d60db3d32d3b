"""Dependencies within one submission (depends_on naming jobs of the same call): the order in
which enqueue.lua must create them (parents first), and the cycles that make one impossible."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from workstream.common.errors import DependencyError, ValidationError
from workstream.common.jobs import JobSpec, stored_json
from workstream.common.keys import Keys


def submission_order(ids: Sequence[str], specs: Sequence[JobSpec]) -> list[int]:
    """Indexes of `specs` with every job after the jobs of the same submission it depends on
    (stable: submission order where the dependencies allow). Parents outside the submission are
    enqueue.lua's to judge. Raises DependencyError naming the ids of a cycle (in cycle order),
    ValidationError for an id given twice."""
    position: dict[str, int] = {}
    for index, job_id in enumerate(ids):
        if job_id in position:
            raise ValidationError("id", f"{job_id!r} is given to more than one job")
        position[job_id] = index
    if all(spec.depends_on is None for spec in specs):
        return list(range(len(specs)))
    inside = [
        [position[parent] for parent in spec.depends_on or () if parent in position]
        for spec in specs
    ]
    order: list[int] = []
    state = [0] * len(specs)  # 0 new, 1 on the current path, 2 placed
    for root in range(len(specs)):
        if state[root]:
            continue
        # Depth first without recursion: (node, next parent to visit).
        stack: list[tuple[int, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, at = stack[-1]
            if at < len(inside[node]):
                stack[-1] = (node, at + 1)
                parent = inside[node][at]
                if state[parent] == 1:
                    path = [n for n, _ in stack]
                    cycle = path[path.index(parent) :]
                    raise DependencyError("dependency_cycle", [ids[n] for n in cycle])
                if state[parent] == 0:
                    state[parent] = 1
                    stack.append((parent, 0))
                continue
            stack.pop()
            state[node] = 2
            order.append(node)
    return order


# ctx.parent_results and a leased job's `parent_results` hold at most this much result JSON in
# all; a parent whose result would pass it (or whose record expired) reads as None.
MAX_PARENT_RESULTS_BYTES = 1024 * 1024


def parent_results(client: redis.Redis, keys: Keys, job_id: str) -> dict[str, Any]:
    """The job's parents (depends_on), each with its result: {} for a job without parents.
    Read when the job runs, so every parent has ended (a failed or cancelled one has no result:
    None, as does one whose record expired or that passed MAX_PARENT_RESULTS_BYTES)."""
    stored, shards_json = client.hmget(keys.job(job_id), ["depends_on", "parent_shards"])
    parents = _stored_ids(stored)
    if not parents:
        return {}
    # Parents in other shards (QUEUE_SHARDS): id -> shard, stored at submission (enqueue.lua).
    elsewhere = _stored_object(shards_json)
    pipe = client.pipeline(transaction=False)
    for parent in parents:
        shard = elsewhere.get(parent)
        where = keys if not isinstance(shard, str) else Keys(keys.namespace, shard)
        pipe.hget(where.job(parent), "result")
    results: dict[str, Any] = {}
    budget = MAX_PARENT_RESULTS_BYTES
    for parent, text in zip(parents, pipe.execute(), strict=True):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text is None or len(text) > budget:
            results[parent] = None
            continue
        budget -= len(text)
        results[parent] = stored_json(text)
    return results


def _stored_object(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        found = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _stored_ids(value: Any) -> list[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return []
    try:
        ids = json.loads(value)
    except ValueError:
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
