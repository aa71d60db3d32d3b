"""Promises 1 and 2 for HTTP consumers: Node workers leasing over the REST API are SIGKILLed at
random instants (while a lease call, a job or an answer is in flight) and restarted. Every job
ends completed, none is lost, and a job runs twice only when a lease of it expired."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import Stopwatch, count_completed, enqueue_all, statuses, store_for
from tests.faults.results import record
from tests.support.consumers import node_runs, start_node_worker
from tests.support.stack import wait_until
from workstream.common.jobs import JobSpec

# Leases of 2 s, a dead consumer noticed after 1 s, a sweep every 300 ms.
ENV = {"WORKER_TTL": "1s", "SWEEPER_INTERVAL": "300ms", "LOG_LEVEL": "warning"}
NODE_ENV = {"COUNT": "10", "LEASE_S": "2", "WAIT_S": "1"}


@dataclass(frozen=True)
class ChaosSize:
    name: str
    jobs: int
    consumers: int
    storm_s: float
    drain_timeout_s: float


FAST = ChaosSize("fast", jobs=600, consumers=2, storm_s=5, drain_timeout_s=60)
FULL = ChaosSize("full", jobs=10_000, consumers=4, storm_s=60, drain_timeout_s=240)


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_http_consumers_killed_at_random_lose_nothing_and_rerun_only_expired_leases(
    size: ChaosSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url, **ENV)
    stack = make_stack(server.url, **ENV)
    api = stack.start_api()
    stack.start_worker({"QUEUES": "idle"})  # scheduler and sweeper only: no Python consumer
    consumers = [start_node_worker(stack, api, **NODE_ENV) for _ in range(size.consumers)]
    rng = random.Random(18)
    specs = [
        JobSpec(type="sleep", payload={"seconds": rng.randint(0, 200) / 1000})
        for _ in range(size.jobs)
    ]
    clock = Stopwatch()
    job_ids: list[str] = []
    chunk = max(size.jobs // int(size.storm_s * 0.8 / 0.1), 1)
    kills = 0
    next_kill = rng.uniform(0.2, 1.0)
    while clock.elapsed < size.storm_s:
        if len(job_ids) < size.jobs:
            job_ids += enqueue_all(store, specs[len(job_ids) : len(job_ids) + chunk])
        if clock.elapsed >= next_kill:
            victim = rng.randrange(len(consumers))
            consumers[victim].signal(signal.SIGKILL)
            consumers[victim].wait(10)
            consumers[victim] = start_node_worker(stack, api, **NODE_ENV)
            kills += 1
            next_kill += rng.uniform(0.2, 1.0)  # a random instant of the lease/run/answer cycle
        time.sleep(0.1)
    job_ids += enqueue_all(store, specs[len(job_ids) :])

    drained = wait_until(lambda: count_completed(client) >= size.jobs, size.drain_timeout_s, 0.5)
    final = statuses(client, job_ids)
    everyone = [p for p in stack.processes if p.name == "node"]
    runs = node_runs(everyone)
    duplicated = {job_id for job_id, n in runs.items() if n > 1}
    expired = set()
    for job_id in duplicated:
        job = store.get_job(job_id)
        if job is not None and any(e["outcome"] == "lost" for e in job.history or []):
            expired.add(job_id)
    lost = size.jobs - final["completed"]
    record(
        "HTTP consumer (Node) SIGKILL storm",
        size.name,
        jobs=size.jobs,
        faults=f"{kills} SIGKILLs of {size.consumers} Node consumers at random instants",
        lost=lost,
        duplicates=sum(runs[j] - 1 for j in duplicated),
        wall_s=clock.elapsed,
        passed=drained and lost == 0 and duplicated <= expired,
        notes=f"{len(duplicated)} jobs ran twice, {len(duplicated & expired)} after a lost lease",
    )

    assert kills >= int(size.storm_s / 1.0) - 1
    assert drained, f"not drained in {size.drain_timeout_s}s: {dict(final)}"
    assert final == {"completed": size.jobs}
    assert set(job_ids) <= set(runs)  # every job ran at least once, on a Node consumer
    assert duplicated <= expired, sorted(duplicated - expired)[:5]
    assert store.stats().get("stale_completions", 0) >= 0
