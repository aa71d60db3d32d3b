"""Batches under worker crashes: an open batch is filled in several calls while a random worker
is SIGKILLed every 2 s and restarted, then sealed. Every member completes and is counted once,
the batch settles, and each callback is created exactly once, as a job, after the last member
ended (its creation and the batch's settlement are each one event in the stream)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import (
    FAST_RECOVERY,
    Stopwatch,
    kill_and_restart,
    statuses,
    store_for,
    work_specs,
)
from tests.faults.results import record
from tests.support.stack import Process, wait_until
from workstream.common.batches import BatchStore, callback_spec
from workstream.common.jobs import JobSpec
from workstream.common.outbox import Outbox
from workstream.common.shards import ShardedStore
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


@dataclass(frozen=True)
class BatchStormSize:
    name: str
    jobs: int
    workers: int
    storm_s: float
    drain_timeout_s: float


FAST = BatchStormSize("fast", jobs=600, workers=2, storm_s=6, drain_timeout_s=60)
FULL = BatchStormSize("full", jobs=10_000, workers=4, storm_s=30, drain_timeout_s=240)
KILL_EVERY_S = 2.0
CALLBACK = {"type": "fault_work", "queue": "callbacks", "payload": {"ms": 0}, "max_attempts": 20}


def fill_during_a_storm(
    batches: BatchStore,
    batch_id: str,
    specs: list[JobSpec],
    added: int,
    size: BatchStormSize,
    workers: list[Process],
    restart: Callable[[int], Process],
    rng: random.Random,
) -> int:
    """Adds `specs` from `added` on in chunks every 0.25 s while a random worker is SIGKILLed
    every KILL_EVERY_S and restarted (restart(i) starts worker i again), for size.storm_s; then
    adds the rest and seals the batch. Returns the SIGKILLs."""
    clock = Stopwatch()
    chunk = storm_chunk(size)
    kills, next_kill = 0, KILL_EVERY_S
    while clock.elapsed < size.storm_s:
        if added < size.jobs:
            batches.add(batch_id, specs[added : added + chunk])
            added = min(added + chunk, size.jobs)
        if clock.elapsed >= next_kill:
            kill_and_restart(workers, rng, restart)
            kills += 1
            next_kill += KILL_EVERY_S
        time.sleep(0.25)
    while added < size.jobs:
        batches.add(batch_id, specs[added : added + 1000])
        added = min(added + 1000, size.jobs)
    batches.seal(batch_id)
    return kills


def storm_chunk(size: BatchStormSize) -> int:
    """Jobs a call, so that the batch fills over most of the storm."""
    return max(size.jobs // int(size.storm_s * 0.8 / 0.25), 1)


def settled_with_callbacks_done(
    batches: BatchStore, store: JobStore, batch_id: str
) -> Callable[[], bool]:
    """Whether the batch settled and each of its callback jobs completed."""

    def settled() -> bool:
        batch = batches.require(batch_id)
        made = [info for info in (batch.on_complete, batch.on_success) if info is not None]
        done = [store.get_status(info.job_id) for info in made]
        return batch.state == "settled" and all(s is JobStatus.COMPLETED for s in done)

    return settled


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_a_batch_filled_during_a_sigkill_storm_settles_with_each_callback_created_once(
    size: BatchStormSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    batches = BatchStore(store)
    stack = make_stack(server.url, **FAST_RECOVERY, WORKER_COUNT="8", QUEUES="default,callbacks")
    workers = [stack.start_worker() for _ in range(size.workers)]
    rng = random.Random(21)
    # Recovered runs count attempts: no member may fail here.
    specs = [replace(spec, max_attempts=20) for spec in work_specs(size.jobs, rng)]
    clock = Stopwatch()
    batch_id, _ = batches.create(
        [],
        sealed=False,
        on_complete=callback_spec("on_complete", CALLBACK),
        on_success=callback_spec("on_success", CALLBACK),
    )
    kills = fill_during_a_storm(
        batches, batch_id, specs, 0, size, workers, lambda _: stack.start_worker(), rng
    )
    settled = settled_with_callbacks_done(batches, store, batch_id)
    drained = wait_until(settled, size.drain_timeout_s, 0.5)
    batch = batches.require(batch_id)
    members, _ = batches.members(batch_id, 0, size.jobs + 1)
    final = statuses(client, [m.id for m in members])
    stream = cast(list[tuple[str, dict[str, str]]], client.xrange(store.keys.events))
    events = [fields for _, fields in stream]
    settlements = sum(1 for e in events if e["ev"] == "batch_settled" and e["job"] == batch_id)
    callbacks_created = [e for e in events if e["ev"] == "created" and e["queue"] == "callbacks"]
    record(
        "batch during a worker SIGKILL storm",
        size.name,
        jobs=size.jobs,
        faults=f"{kills} SIGKILLs of {size.workers} workers",
        lost=size.jobs - final["completed"],
        duplicates=None,
        wall_s=clock.elapsed,
        passed=drained and batch.completed == size.jobs and len(callbacks_created) == 2,
        notes=f"settled {settlements}x; callbacks created {len(callbacks_created)}x (2 expected)",
    )

    assert kills >= int(size.storm_s / KILL_EVERY_S) - 1
    assert drained, f"not settled in {size.drain_timeout_s}s: {batch}"
    assert final == {"completed": size.jobs}
    assert (batch.total, batch.completed, batch.failed, batch.cancelled) == (
        size.jobs,
        size.jobs,
        0,
        0,
    )
    assert settlements == 1
    assert len(callbacks_created) == 2  # on_complete and on_success, each once
    assert int(client.llen(store.keys.queue("callbacks"))) == 0


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_a_batch_in_a_named_shard_settles_once_and_hands_each_callback_off_once(
    size: BatchStormSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    """The same storm with the batch's members in shard a (QUEUE_SHARDS) and its callbacks'
    queue in the default shard: each callback crosses shards through the outbox, whose movers
    (every worker's scheduler duty) die with their workers."""
    server = make_redis()
    client = server.client()
    env = {**FAST_RECOVERY, "QUEUE_SHARDS": "work_a:a", "WORKER_COUNT": "8"}
    plain = store_for(server.url, QUEUE_SHARDS="work_a:a")
    store = ShardedStore(plain.redis, plain.settings)
    batches = BatchStore(store)
    stack = make_stack(server.url, **env)
    queues = ["work_a", "callbacks"]
    workers = [stack.start_worker({"QUEUES": queues[i % 2]}) for i in range(max(size.workers, 2))]
    rng = random.Random(23)
    specs = [replace(spec, max_attempts=20, queue="work_a") for spec in work_specs(size.jobs, rng)]
    clock = Stopwatch()
    chunk = storm_chunk(size)
    batch_id, _ = batches.create(  # its first members place it in shard a
        specs[:chunk],
        sealed=False,
        on_complete=callback_spec("on_complete", CALLBACK),
        on_success=callback_spec("on_success", CALLBACK),
    )
    kills = fill_during_a_storm(
        batches,
        batch_id,
        specs,
        chunk,
        size,
        workers,
        lambda i: stack.start_worker({"QUEUES": queues[i % 2]}),
        rng,
    )
    settled = settled_with_callbacks_done(batches, store, batch_id)
    drained = wait_until(settled, size.drain_timeout_s, 0.5)
    batch = batches.require(batch_id)
    members, _ = batches.members(batch_id, 0, size.jobs + 1)
    final = Counter(
        "missing" if job is None else job.status.value
        for job in store.get_jobs([m.id for m in members])
    )
    shard_a, home = store.stores["a"].keys, store.stores[""].keys
    settlements = sum(
        1
        for _, e in cast(list[tuple[str, dict[str, str]]], client.xrange(shard_a.events))
        if e["ev"] == "batch_settled" and e["job"] == batch_id
    )
    callbacks_created = [
        e
        for _, e in cast(list[tuple[str, dict[str, str]]], client.xrange(home.events))
        if e["ev"] == "created" and e["queue"] == "callbacks"
    ]
    owed = Outbox(client, store.settings).owed()
    record(
        "batch in a named shard during a worker SIGKILL storm (callbacks handed off)",
        size.name,
        jobs=size.jobs,
        faults=f"{kills} SIGKILLs of {len(workers)} workers",
        lost=size.jobs - final["completed"],
        duplicates=None,
        wall_s=clock.elapsed,
        passed=drained and batch.completed == size.jobs and len(callbacks_created) == 2,
        notes=f"settled {settlements}x; callbacks created {len(callbacks_created)}x (2 "
        f"expected); {owed} hand-offs left owed",
    )

    assert kills >= int(size.storm_s / KILL_EVERY_S) - 1
    assert drained, f"not settled in {size.drain_timeout_s}s: {batch}"
    assert batch_id.startswith("a:")
    assert final == {"completed": size.jobs}
    assert (batch.total, batch.completed) == (size.jobs, size.jobs)
    assert settlements == 1
    assert len(callbacks_created) == 2  # on_complete and on_success, each once
    assert owed == 0
