"""Promise 1's bound on poison: a job that kills its own worker process (os._exit) ends
`failed` after MAX_ATTEMPTS instead of looping, and every other job completes. The test plays
the supervisor and restarts each worker that dies."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import FAST_RECOVERY, PREFIX, Stopwatch, enqueue_all, store_for
from tests.faults.results import record
from tests.support.stack import Stack
from workstream.common.jobs import JobSpec

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class PoisonSize:
    name: str
    jobs: int
    poison: int
    workers: int
    timeout_s: float


FAST = PoisonSize("fast", jobs=400, poison=1, workers=2, timeout_s=60)
FULL = PoisonSize("full", jobs=4_000, poison=5, workers=4, timeout_s=240)


def supervise(stack: Stack, done: Callable[[], bool], timeout_s: float) -> int:
    """Restarts each dead worker until `done()` or the timeout; returns how many died."""
    deaths = 0
    deadline = time.monotonic() + timeout_s
    restarted: set[int] = set()
    while time.monotonic() < deadline and not done():
        for worker in stack.workers():
            if not worker.alive() and worker.pid not in restarted:
                restarted.add(worker.pid)
                deaths += 1
                stack.start_worker()
        time.sleep(0.2)
    return deaths


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_worker_killing_job_fails_after_max_attempts_and_the_rest_complete(
    size: PoisonSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(
        server.url, **FAST_RECOVERY, WORKER_COUNT="4", MAX_ATTEMPTS=str(MAX_ATTEMPTS)
    )
    for _ in range(size.workers):
        stack.start_worker()
    rng = random.Random(5)
    specs = [JobSpec(type="fault_poison", payload={"ms": rng.randint(0, 20)})] * size.jobs
    poison_at = set(rng.sample(range(size.jobs), size.poison))
    for index in poison_at:
        specs[index] = JobSpec(type="fault_poison", payload={"poison": True})
    clock = Stopwatch()
    job_ids = enqueue_all(store, specs, batch=50)
    poison_ids = {job_ids[i] for i in poison_at}

    def settled() -> bool:
        terminal = client.zcard(f"{PREFIX}status:completed") + client.zcard(
            f"{PREFIX}status:failed"
        )
        return int(terminal) >= size.jobs

    deaths = supervise(stack, settled, size.timeout_s)
    failed = {str(i) for i in client.zrange(f"{PREFIX}status:failed", 0, -1)}
    completed = int(client.zcard(f"{PREFIX}status:completed"))
    lost = size.jobs - completed - len(failed)
    record(
        "poison jobs (os._exit)",
        size.name,
        jobs=size.jobs,
        faults=f"{size.poison} poison jobs, {deaths} worker deaths",
        lost=lost,
        duplicates=None,
        wall_s=clock.elapsed,
        passed=failed == poison_ids and lost == 0,
        notes=f"{len(failed - poison_ids)} bystanders failed",
    )

    assert settled(), f"{lost} jobs not terminal after {size.timeout_s}s"
    assert failed == poison_ids, f"bystanders failed: {len(failed - poison_ids)}"
    # A poison job's first death may be beside others (no attempt counted); then it runs alone.
    assert size.poison * MAX_ATTEMPTS <= deaths <= size.poison * (MAX_ATTEMPTS + 1)
    for job_id in poison_ids:
        assert client.hget(f"{PREFIX}job:{job_id}", "attempts") == str(MAX_ATTEMPTS)
    assert bystander_attempts(client, set(job_ids) - poison_ids) == {1}, "a bystander paid"


def bystander_attempts(client: redis.Redis, job_ids: set[str]) -> set[int]:
    """The distinct attempt counts of the jobs that completed beside the poison."""
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(f"{PREFIX}job:{job_id}", "attempts")
    return {int(value) for value in pipe.execute()}
