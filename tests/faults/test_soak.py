"""Promise 3 over time: after many jobs with a short RESULT_TTL the key count and Redis memory
return to the baseline (no leaked keys or index entries), and worker RSS stays flat."""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import PREFIX, Stopwatch, enqueue_all, leftover_key_patterns, store_for
from tests.faults.results import record
from tests.support.stack import Process, wait_until
from workstream.common.jobs import JobSpec

RESULT_TTL_S = 5
MEMORY_TOLERANCE_BYTES = 4 * 1024 * 1024  # dict tables shrink lazily; scripts stay cached
RSS_GROWTH_TOLERANCE = 1.10  # second-half mean RSS may exceed the first half's by 10 %
MAX_DEPTH = 10_000
BATCH = 1_000


@dataclass(frozen=True)
class SoakSize:
    name: str
    jobs: int
    workers: int
    timeout_s: float


FAST = SoakSize("fast", jobs=2_000, workers=2, timeout_s=60)
FULL = SoakSize("full", jobs=200_000, workers=2, timeout_s=420)


def vm_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    def __init__(self, workers: list[Process]) -> None:
        self.workers = workers
        self.samples: dict[int, list[int]] = {w.pid: [] for w in workers}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            for worker in self.workers:
                rss = vm_rss_kib(worker.pid)
                if rss is not None:
                    self.samples[worker.pid].append(rss)

    def growth(self) -> dict[int, float]:
        """Second-half mean RSS over first-half mean, per worker."""
        ratios = {}
        for pid, series in self.samples.items():
            half = len(series) // 2
            if half >= 2:
                ratios[pid] = statistics.mean(series[half:]) / statistics.mean(series[:half])
        return ratios


def key_set(client: redis.Redis) -> set[str]:
    return {str(k) for k in client.scan_iter(count=1000)}


def completed_count(client: redis.Redis) -> int:
    stats: dict[str, str] = client.hgetall(f"{PREFIX}stats")  # type: ignore[assignment]
    return sum(int(v) for k, v in stats.items() if k.startswith("completed|"))


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_expired_jobs_leave_no_keys_memory_or_worker_rss_behind(
    size: SoakSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(
        server.url,
        RESULT_TTL=f"{RESULT_TTL_S}s",
        SWEEPER_INTERVAL="1s",
        WORKER_TTL="3s",
        WORKER_COUNT="8",
        LOG_LEVEL="warning",
    )
    workers = [stack.start_worker() for _ in range(size.workers)]

    # Baseline: the steady state after a first small batch has come and gone.
    enqueue_all(store, [JobSpec(type="echo", payload={"warm": i}) for i in range(200)])
    assert wait_until(lambda: completed_count(client) == 200, 30, 0.2)
    assert wait_until(lambda: client.zcard(f"{PREFIX}jobs") == 0, RESULT_TTL_S + 15, 0.2)
    baseline_keys = key_set(client)
    baseline_memory = int(client.info("memory")["used_memory"])

    sampler = RssSampler(workers)
    sampler.thread.start()
    clock = Stopwatch()
    submitted = 0
    while submitted < size.jobs and clock.elapsed < size.timeout_s:
        if client.llen(f"{PREFIX}queue:default") > MAX_DEPTH:
            sampler.stop.wait(0.05)
            continue
        count = min(BATCH, size.jobs - submitted)
        enqueue_all(
            store, [JobSpec(type="echo", payload={"n": submitted + i}) for i in range(count)]
        )
        submitted += count
    target = 200 + size.jobs
    drained = wait_until(lambda: completed_count(client) >= target, size.timeout_s, 0.5)
    run_s = clock.elapsed
    sampler.stop.set()
    sampler.thread.join(5)
    returned = wait_until(lambda: key_set(client) <= baseline_keys, RESULT_TTL_S + 30, 0.5)
    leftover = key_set(client) - baseline_keys
    memory = int(client.info("memory")["used_memory"])
    growth = sampler.growth()
    record(
        "soak (RESULT_TTL 5s)",
        size.name,
        jobs=size.jobs,
        faults="none (expiry and pruning only)",
        lost=target - completed_count(client),
        duplicates=None,
        wall_s=clock.elapsed,
        passed=drained and returned and memory <= baseline_memory + MEMORY_TOLERANCE_BYTES,
        notes=(
            f"{size.jobs / run_s:.0f} jobs/s; keys {len(baseline_keys)}->{len(key_set(client))}; "
            f"used_memory {baseline_memory / 1e6:.2f}->{memory / 1e6:.2f} MB; worker RSS "
            + ", ".join(f"x{g:.2f}" for g in growth.values())
        ),
    )

    assert drained, f"completed {completed_count(client)} of {target}"
    assert returned, (
        f"leftover keys: {leftover_key_patterns(client)} (new: {sorted(leftover)[:10]})"
    )
    assert memory <= baseline_memory + MEMORY_TOLERANCE_BYTES, (memory, baseline_memory)
    assert all(g <= RSS_GROWTH_TOLERANCE for g in growth.values()), growth
