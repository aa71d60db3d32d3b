"""/batches: create (with jobs, or open), add jobs to an open batch, seal, read, list."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import falcon

from workstream.api import validation
from workstream.api.errors import validation_error
from workstream.common.batches import (
    CALLBACKS,
    BatchStore,
    callback_spec,
    entry_key,
    keyed_batch_id,
)
from workstream.common.errors import BatchNotFoundError
from workstream.common.jobs import EnqueueResult, JobSpec, is_job_id
from workstream.common.store import MAX_BATCH

CREATE_FIELDS = frozenset({"jobs", "open", *CALLBACKS})
ADD_FIELDS = frozenset({"jobs"})
OFFSET_PATTERN = re.compile(r"[0-9]{1,7}")


def parse_batch_id(raw: str) -> str:
    """Anything that is not an id cannot name a batch: 404, as for an unknown id."""
    if not is_job_id(raw):
        raise BatchNotFoundError(raw[:64])
    return raw


def _body(req: falcon.Request, limit: int, fields: frozenset[str]) -> Mapping[str, Any]:
    data = validation.read_json(req, limit)
    if not isinstance(data, Mapping):
        raise validation_error("body", "expected a JSON object")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise validation_error(unknown[0], "unknown field")
    return data


def _specs(
    jobs: Any, req: falcon.Request, store: BatchStore, target: str, key: str | None
) -> list[JobSpec]:
    """The entries as POST /jobs/batch reads them; with an Idempotency-Key each entry gets a key
    derived from it and the batch (common.batches.entry_key), so a retried call replays."""
    if not isinstance(jobs, list):
        raise validation_error("jobs", "expected an array of jobs")
    if key is not None:
        for index, entry in enumerate(jobs):
            if isinstance(entry, Mapping) and entry.get("idempotency_key") is not None:
                raise validation_error(
                    f"jobs[{index}].idempotency_key",
                    "the call's Idempotency-Key keys every entry; send one or the other",
                )
        jobs = [
            {**entry, "idempotency_key": entry_key(target, key, index)}
            if isinstance(entry, Mapping)
            else entry
            for index, entry in enumerate(jobs)
        ]
    allowed = store.store.settings.http_job_allowed_networks
    specs = validation.batch_specs({"jobs": jobs}, allowed)
    req.context.queue_demand = Counter(spec.queue for spec in specs)
    return specs


def _results(results: Sequence[EnqueueResult]) -> list[dict[str, Any]]:
    return [{"id": r.job_id, "status": r.status.value, "created": r.created} for r in results]


def _offset(req: falcon.Request) -> int:
    raw = req.get_param("cursor")
    if raw is None or raw == "":
        return 0
    if not OFFSET_PATTERN.fullmatch(raw):
        raise validation_error("cursor", "not a cursor this API returned")
    return int(raw)


class BatchCollection:
    def __init__(self, batches: BatchStore) -> None:
        self._batches = batches
        self._limit = batches.store.settings.max_payload_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        key = validation.idempotency_header(req)
        data = _body(req, self._limit, CREATE_FIELDS)
        is_open = data.get("open", False)
        if not isinstance(is_open, bool):
            raise validation_error("open", "expected true or false")
        jobs = data.get("jobs", [])
        if not jobs and not is_open and "jobs" in data:
            raise validation_error("jobs", 'expected 1 or more jobs (or "open": true)')
        target = keyed_batch_id(key) if key is not None else None
        specs = _specs(jobs, req, self._batches, target or "", key) if jobs else []
        callbacks = {
            which: callback_spec(which, data[which])
            for which in CALLBACKS
            if data.get(which) is not None
        }
        existed = target is not None and self._batches.exists(self._batches.placed(target, specs))
        made_id, results = self._batches.create(
            specs,
            sealed=bool(specs) and not is_open,
            on_complete=callbacks.get("on_complete"),
            on_success=callbacks.get("on_success"),
            batch_id=target,
        )
        body = self._batches.require(made_id).to_json()
        body["jobs"] = _results(results)
        resp.media = body
        if not existed:
            resp.status = falcon.HTTP_201
            resp.location = f"/batches/{made_id}"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = self._batches.list(limit=validation.limit(req), cursor=validation.cursor(req))
        resp.media = {
            "batches": [batch.to_json() for batch in page.batches],
            "next_cursor": page.next_cursor,
        }


class BatchItem:
    def __init__(self, batches: BatchStore) -> None:
        self._batches = batches
        self._limit = batches.store.settings.max_payload_bytes

    def on_get(self, req: falcon.Request, resp: falcon.Response, batch_id: str) -> None:
        batch = self._batches.require(parse_batch_id(batch_id))
        members, next_offset = self._batches.members(batch.id, _offset(req), validation.limit(req))
        body = batch.to_json()
        body["jobs"] = [member.to_json() for member in members]
        body["next_cursor"] = None if next_offset is None else str(next_offset)
        resp.media = body

    def on_post_jobs(self, req: falcon.Request, resp: falcon.Response, batch_id: str) -> None:
        target = parse_batch_id(batch_id)
        key = validation.idempotency_header(req)
        data = _body(req, self._limit, ADD_FIELDS)
        jobs = data.get("jobs")
        if isinstance(jobs, list) and not 1 <= len(jobs) <= MAX_BATCH:
            raise validation_error("jobs", f"expected 1 to {MAX_BATCH} jobs, got {len(jobs)}")
        results = self._batches.add(target, _specs(jobs, req, self._batches, target, key))
        added = sum(1 for r in results if r.created)
        resp.media = {"batch": target, "added": added, "jobs": _results(results)}
        if any(r.created for r in results):
            resp.status = falcon.HTTP_201

    def on_post_seal(self, req: falcon.Request, resp: falcon.Response, batch_id: str) -> None:
        resp.media = self._batches.seal(parse_batch_id(batch_id)).to_json()
