"""Promise 1 through a flaky network: every connection between the workers and Redis is cut
every few seconds. No job is lost and none stays in `processing` longer than WORKER_TTL plus
one sweep beyond its own run time."""

from __future__ import annotations

import random
import threading
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
from tests.faults.proxy import CuttingProxy
from tests.faults.results import record
from tests.support.stack import wait_until
from workstream.common.store import JobStore

WORKER_TTL_S = 2.0
SWEEP_S = 1.0
LONGEST_JOB_S = 0.05
# A job may legitimately be processing for its run time; a dropped reply may cost one
# heartbeat-loss detection plus one sweep; 1 s covers sampling and scheduling jitter.
MAX_PROCESSING_S = WORKER_TTL_S + SWEEP_S + LONGEST_JOB_S + 1.0


@dataclass(frozen=True)
class CutSize:
    name: str
    jobs: int
    workers: int
    run_s: float
    cut_every_s: float


FAST = CutSize("fast", jobs=1_500, workers=2, run_s=6, cut_every_s=1.5)
FULL = CutSize("full", jobs=15_000, workers=4, run_s=60, cut_every_s=2.0)


class ProcessingAgeSampler:
    """Samples how long each processing job has been running (Redis server time)."""

    def __init__(self, url: str) -> None:
        self.client = store_for(url).redis
        self.oldest_s = 0.0
        self.oldest_job = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            ids = self.client.zrange(f"{PREFIX}status:processing", 0, 999)
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            for job_id in ids:
                pipe.hget(f"{PREFIX}job:{job_id}", "started_at")
            (seconds, micros), *started = pipe.execute()
            now_ms = seconds * 1000 + micros // 1000
            for job_id, started_ms in zip(ids, started, strict=True):
                age = (now_ms - int(started_ms or now_ms)) / 1000
                if age > self.oldest_s:
                    self.oldest_s, self.oldest_job = age, job_id


def retried(store: JobStore) -> int:
    """Attempts that failed and were retried (a handler's command cut mid-flight)."""
    return sum(n for key, n in store.stats().items() if key.startswith("retried|"))


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_connection_cuts_lose_no_job_and_strand_none_in_processing(
    size: CutSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    proxy = CuttingProxy(server.port).start()
    stack = make_stack(proxy.url, **FAST_RECOVERY, WORKER_COUNT="8")
    for _ in range(size.workers):
        stack.start_worker()
    sampler = ProcessingAgeSampler(server.url)
    sampler.thread.start()
    specs = work_specs(size.jobs, random.Random(4))
    clock = Stopwatch()

    job_ids: list[str] = []
    chunk = max(size.jobs // int(size.run_s * 0.8 / 0.25), 1)
    next_cut = size.cut_every_s
    try:
        while clock.elapsed < size.run_s:
            if len(job_ids) < size.jobs:
                job_ids += enqueue_all(store, specs[len(job_ids) : len(job_ids) + chunk])
            if clock.elapsed >= next_cut:
                proxy.cut()
                next_cut += size.cut_every_s
            time.sleep(0.25)
        job_ids += enqueue_all(store, specs[len(job_ids) :])
        drained = wait_until(lambda: count_completed(client) >= size.jobs, 120, 0.5)
    finally:
        sampler.stop.set()
        sampler.thread.join(5)
        stack.stop_all(timeout_s=10)
        proxy.stop()
    final = statuses(client, job_ids)
    executions = Executions.read(client)
    lost = size.jobs - final["completed"]
    record(
        "network cuts (worker<->Redis)",
        size.name,
        jobs=size.jobs,
        faults=f"{proxy.cuts} cuts of all connections",
        lost=lost,
        duplicates=executions.duplicates,
        wall_s=clock.elapsed,
        passed=drained and lost == 0 and sampler.oldest_s <= MAX_PROCESSING_S,
        notes=f"longest in processing {sampler.oldest_s:.1f}s, {retried(store)} retries",
    )

    assert drained, f"not drained: {dict(final)}"
    assert final == {"completed": size.jobs}
    assert sampler.oldest_s <= MAX_PROCESSING_S, (
        f"job {sampler.oldest_job} was processing for {sampler.oldest_s:.1f}s"
    )
