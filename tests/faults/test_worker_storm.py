"""Promise 1 and 2 under worker crashes: a random worker is SIGKILLed every 2 s and restarted
while jobs flow. Every job ends completed, none is lost, and a job runs twice only when it was
in the processing list of a worker that died."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import (
    FAST_RECOVERY,
    PREFIX,
    Executions,
    Stopwatch,
    count_completed,
    enqueue_all,
    statuses,
    store_for,
    work_specs,
)
from tests.faults.results import record
from tests.support.stack import wait_until


@dataclass(frozen=True)
class StormSize:
    name: str
    jobs: int
    workers: int
    storm_s: float
    drain_timeout_s: float


FAST = StormSize("fast", jobs=1_500, workers=2, storm_s=8, drain_timeout_s=60)
FULL = StormSize("full", jobs=20_000, workers=4, storm_s=60, drain_timeout_s=240)
KILL_EVERY_S = 2.0


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_sigkill_storm_loses_nothing_and_reruns_only_jobs_of_killed_workers(
    size: StormSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(server.url, **FAST_RECOVERY, WORKER_COUNT="8")
    workers = [stack.start_worker() for _ in range(size.workers)]
    rng = random.Random(1)
    specs = work_specs(size.jobs, rng)
    clock = Stopwatch()

    # Submission is spread over the storm so every kill lands on busy workers.
    job_ids: list[str] = []
    in_flight_at_kills: set[str] = set()
    kills = 0
    chunk = max(size.jobs // int(size.storm_s * 0.8 / 0.25), 1)
    next_kill = KILL_EVERY_S
    while clock.elapsed < size.storm_s:
        if len(job_ids) < size.jobs:
            job_ids += enqueue_all(store, specs[len(job_ids) : len(job_ids) + chunk])
        if clock.elapsed >= next_kill:
            victim = rng.randrange(len(workers))
            pid = workers[victim].pid
            workers[victim].signal(signal.SIGKILL)
            workers[victim].wait(10)
            # A dead process's list is frozen: reading it now gives exactly what it held.
            for key in client.scan_iter(match=f"{PREFIX}processing:*-{pid}-*"):
                in_flight_at_kills.update(client.lrange(key, 0, -1))
            workers[victim] = stack.start_worker()
            kills += 1
            next_kill += KILL_EVERY_S
        time.sleep(0.25)
    job_ids += enqueue_all(store, specs[len(job_ids) :])

    drained = wait_until(lambda: count_completed(client) >= size.jobs, size.drain_timeout_s, 0.5)
    final = statuses(client, job_ids)
    executions = Executions.read(client)
    recovered = sum(v for k, v in store.stats().items() if k.startswith("recovered|"))
    lost = size.jobs - final["completed"]
    record(
        "worker SIGKILL storm",
        size.name,
        jobs=size.jobs,
        faults=f"{kills} SIGKILLs of {size.workers} workers",
        lost=lost,
        duplicates=executions.duplicates,
        wall_s=clock.elapsed,
        passed=drained and lost == 0,
        notes=f"{len(in_flight_at_kills)} jobs held by killed workers; {recovered} recovered",
    )

    assert kills >= int(size.storm_s / KILL_EVERY_S) - 1
    assert drained, f"not drained in {size.drain_timeout_s}s: {dict(final)}"
    assert final == {"completed": size.jobs}
    assert len(executions.per_job) == size.jobs  # every job ran at least once
    assert executions.duplicated <= in_flight_at_kills
    assert executions.duplicates <= recovered
