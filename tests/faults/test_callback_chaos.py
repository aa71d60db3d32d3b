"""A finished job's callback is never lost: jobs with callback_url complete while the workers
delivering their callbacks are SIGKILLed again and again in the middle of deliveries. The
receiver holds each POST open a while, and each kill takes the worker whose callback POST is
open at that moment (its pid is in the callback job's `worker`). Every callback still arrives
at least once; a duplicate comes only from a delivery a killed worker had already sent."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import FAST_RECOVERY, PREFIX, Stopwatch, statuses, store_for
from tests.faults.results import record
from tests.support.callback_receiver import CallbackReceiver
from tests.support.stack import Process, wait_until
from workstream.common.jobs import JobSpec


@dataclass(frozen=True)
class CallbackChaosSize:
    name: str
    jobs: int
    workers: int
    kills: int
    storm_timeout_s: float
    drain_timeout_s: float


FAST = CallbackChaosSize(
    "fast", jobs=150, workers=2, kills=2, storm_timeout_s=30, drain_timeout_s=60
)
FULL = CallbackChaosSize(
    "full", jobs=4_000, workers=3, kills=25, storm_timeout_s=180, drain_timeout_s=300
)
KILL_GAP_S = 1.0  # at least this long between kills
HOLD_S = 0.1  # how long the receiver keeps each POST before answering
ENV = {
    **FAST_RECOVERY,
    "WORKER_COUNT": "8",
    "HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.1/32",
    "RETRY_BACKOFF": "200ms",
    "RETRY_BACKOFF_MAX": "2s",
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_every_callback_arrives_although_its_workers_are_killed_mid_delivery(
    size: CallbackChaosSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url, CALLBACK_MAX_ATTEMPTS="50")
    receiver = CallbackReceiver(delay_s=HOLD_S)
    try:
        stack = make_stack(server.url, **ENV)
        workers = [stack.start_worker() for _ in range(size.workers)]
        clock = Stopwatch()
        job_ids: list[str] = []
        chunk = max(size.jobs // 40, 1)
        kills, next_kill = 0, 0.0
        rng = random.Random(7)

        def submit(count: int) -> None:
            specs = [
                JobSpec(type="echo", payload=len(job_ids) + i, callback_url=receiver.url())
                for i in range(min(count, size.jobs - len(job_ids)))
            ]
            if specs:
                job_ids.extend(r.job_id for r in store.enqueue_many(specs))

        while kills < size.kills and clock.elapsed < size.storm_timeout_s:
            if len(receiver.deliveries) + 4 * chunk >= len(job_ids):  # keep callbacks flowing
                submit(chunk)
            victim = _sender(client, workers, receiver.open_ids(), rng)
            if victim is not None and clock.elapsed >= next_kill:
                victim.signal(signal.SIGKILL)
                victim.wait(10)
                workers[workers.index(victim)] = stack.start_worker()
                kills += 1
                next_kill = clock.elapsed + KILL_GAP_S
            time.sleep(0.02)
        while len(job_ids) < size.jobs:
            submit(500)
        storm_s = clock.elapsed

        def all_delivered() -> bool:
            return len({r["id"] for r in receiver.records() if isinstance(r, dict)}) >= size.jobs

        drained = wait_until(all_delivered, size.drain_timeout_s, 0.25)
        records = [r for r in receiver.records() if isinstance(r, dict)]
        delivered = {r["id"] for r in records}
        lost = len(set(job_ids) - delivered)
        final = statuses(client, job_ids)
        record(
            "callbacks, delivering workers SIGKILLed mid-POST",
            size.name,
            jobs=size.jobs,
            faults=f"{kills} SIGKILLs of {size.workers} workers, each with a callback POST open",
            lost=lost,
            duplicates=len(records) - len(delivered),
            wall_s=clock.elapsed,
            passed=drained and lost == 0 and kills == size.kills,
            notes=f"{len(records)} deliveries for {len(delivered)} jobs; kills in {storm_s:.0f} s",
        )
        assert kills == size.kills, f"only {kills} kills landed mid-delivery"
        assert drained and lost == 0, f"{lost} callbacks never arrived; jobs: {dict(final)}"
        assert len(job_ids) == size.jobs and final == {"completed": size.jobs}
        assert all(r["status"] == "completed" for r in records)
        assert {r["result"] for r in records} == set(range(size.jobs))
    finally:
        receiver.stop()


def _sender(
    client: redis.Redis, workers: list[Process], open_ids: list[str], rng: random.Random
) -> Process | None:
    """A worker process delivering one of the open POSTs (worker ids are host-pid-random)."""
    by_pid = {worker.pid: worker for worker in workers}
    rng.shuffle(open_ids)
    for callback_id in open_ids:
        holder = client.hget(f"{PREFIX}job:{callback_id}", "worker")
        parts = str(holder or "").rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in by_pid:
            return by_pid[int(parts[1])]
    return None
