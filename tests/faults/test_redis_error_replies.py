"""Redis refusing work in the middle of a drain, through real worker processes.

BUSY (a long script holds Redis; every other client is refused) and OOM (maxmemory with
noeviction; every write is refused) while outcomes are being recorded: the workers keep what
their handlers finished and resend it once Redis answers again. Nothing is lost, no live worker
runs a job twice (WORKER_TTL is longer than the refusals, so no worker is presumed dead), and
every worker claims new jobs afterwards.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.handlers import WORKERS_KEY
from tests.faults.harness import (
    HANDLERS,
    PREFIX,
    Executions,
    Stopwatch,
    count_completed,
    enqueue_all,
    statuses,
    store_for,
    worker_ids_by_pid,
)
from tests.faults.results import record
from tests.support.faults import keep_busy
from tests.support.stack import wait_until
from workstream.common.jobs import JobSpec

# Longer than any refusal below, so no worker is presumed dead meanwhile.
ENV = {
    "WORKER_HANDLERS": HANDLERS,
    "WORKER_TTL": "15s",
    "SWEEPER_INTERVAL": "1s",
    "RETRY_BACKOFF": "0s",
    "MAX_ATTEMPTS": "5",
    "LOG_LEVEL": "warning",
}


@dataclass(frozen=True)
class Size:
    name: str
    jobs: int
    workers: int
    slots: int
    busy_s: float
    oom_s: float
    rounds: int
    timeout_s: float


FAST = Size("fast", jobs=400, workers=2, slots=4, busy_s=1.5, oom_s=1.0, rounds=1, timeout_s=60)
FULL = Size("full", jobs=6_000, workers=3, slots=8, busy_s=7, oom_s=3, rounds=3, timeout_s=300)


def _busy_for(url: str, seconds: float) -> None:
    """Holds Redis in a script for `seconds`: everyone else is answered BUSY."""
    client = redis.Redis.from_url(url, socket_timeout=seconds + 10)
    try:
        keep_busy(client, seconds)
    finally:
        client.close()


def _oom_for(client: redis.Redis, seconds: float) -> None:
    client.config_set("maxmemory", 1)  # far below what is in use: every write is refused
    time.sleep(seconds)  # the fault's length, not a wait for a condition
    client.config_set("maxmemory", 0)


def _completed_at_least(client: redis.Redis, count: int) -> Callable[[], bool]:
    return lambda: count_completed(client) >= count


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_busy_and_oom_mid_drain_lose_nothing_and_every_worker_claims_after(
    size: Size, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis("--busy-reply-threshold", "50", "--maxmemory-policy", "noeviction")
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(server.url, **ENV, WORKER_COUNT=str(size.slots))
    rng = random.Random(15)
    specs = [JobSpec(type="fault_tagged", payload={"ms": rng.randint(5, 40)})] * size.jobs
    job_ids = enqueue_all(store, specs)
    for _ in range(size.workers):
        stack.start_worker()
    clock = Stopwatch()
    step = size.jobs // (2 * size.rounds + 1)
    for round_ in range(size.rounds):
        # Each fault starts while jobs run and outcomes are on their way to Redis.
        assert wait_until(_completed_at_least(client, step * (2 * round_ + 1)), 60, 0.01)
        spinner = threading.Thread(target=_busy_for, args=(server.url, size.busy_s))
        spinner.start()
        spinner.join(size.busy_s + 15)
        assert wait_until(_completed_at_least(client, step * (2 * round_ + 2)), 60, 0.01)
        _oom_for(client, size.oom_s)

    def drained() -> bool:
        return count_completed(client) >= size.jobs

    done = wait_until(drained, size.timeout_s, 0.1)
    drain_s = clock.elapsed
    counts = statuses(client, job_ids)
    executions = Executions.read(client)

    # Every worker claims again: more jobs than one worker's slots, long enough to spread.
    before = {str(k): int(v) for k, v in client.hgetall(WORKERS_KEY).items()}
    more = enqueue_all(store, [JobSpec(type="fault_tagged", payload={"ms": 200})] * (
        size.workers * size.slots
    ))  # fmt: skip
    claimed_after = wait_until(lambda: statuses(client, more)["completed"] == len(more), 30, 0.05)
    after = {str(k): int(v) for k, v in client.hgetall(WORKERS_KEY).items()}
    live = set(worker_ids_by_pid(client).values())
    claiming = {w for w in live if after.get(w, 0) > before.get(w, 0)}
    record(
        "Redis BUSY and OOM replies mid-drain",
        size.name,
        jobs=size.jobs,
        faults=f"{size.rounds} x (BUSY {size.busy_s:g}s + OOM {size.oom_s:g}s)",
        lost=size.jobs - counts["completed"],
        duplicates=executions.duplicates,
        wall_s=drain_s,
        passed=done and executions.duplicates == 0 and claiming == live,
        notes=f"{len(claiming)}/{len(live)} workers claimed afterwards",
    )
    assert done, f"not drained after {size.timeout_s}s: {counts}"
    assert counts == {"completed": size.jobs}
    assert executions.duplicates == 0, sorted(executions.duplicated)[:5]
    stats = [str(field) for field in client.hkeys(f"{PREFIX}stats")]
    assert not [f for f in stats if f.startswith("recovered")]  # nobody presumed dead
    assert claimed_after and len(live) == size.workers and claiming == live
    assert all(worker.alive() for worker in stack.workers())
