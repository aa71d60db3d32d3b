"""Shared steps of the fault suites: settings, bulk submission, outcome accounting."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.faults.handlers import EXECUTIONS_KEY
from tests.support.stack import Process
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore

REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.faults.handlers"
PREFIX = "ws:{default}:"

# Workers that notice a death quickly: declared dead after 2 s, swept every second.
FAST_RECOVERY = {
    "WORKER_HANDLERS": HANDLERS,
    "WORKER_TTL": "2s",
    "SWEEPER_INTERVAL": "1s",
    "LOG_LEVEL": "warning",
}


def store_for(url: str, **env: str) -> JobStore:
    settings = Settings.from_environ({"REDIS_URL": url, **env})
    return JobStore(connect(settings), settings)


def work_specs(count: int, rng: random.Random, max_ms: int = 50) -> list[JobSpec]:
    """Half instant jobs, half taking 0..max_ms milliseconds."""
    return [
        JobSpec(type="fault_work", payload={"ms": rng.randint(0, max_ms) if i % 2 else 0})
        for i in range(count)
    ]


def enqueue_all(store: JobStore, specs: Sequence[JobSpec], batch: int = 500) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(specs), batch):
        ids += [r.job_id for r in store.enqueue_many(specs[start : start + batch])]
    return ids


def statuses(client: redis.Redis, job_ids: Sequence[str]) -> Counter[str]:
    """Counts the status of each job; a missing record counts as "missing"."""
    counts: Counter[str] = Counter()
    for start in range(0, len(job_ids), 2000):
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids[start : start + 2000]:
            pipe.hget(f"{PREFIX}job:{job_id}", "status")
        counts.update(status or "missing" for status in pipe.execute())
    return counts


def count_completed(client: redis.Redis) -> int:
    return int(client.zcard(f"{PREFIX}status:completed"))


@dataclass(frozen=True)
class Executions:
    """How often the fault handlers ran each job."""

    per_job: dict[str, int]

    @classmethod
    def read(cls, client: redis.Redis) -> Executions:
        raw: dict[str, Any] = client.hgetall(EXECUTIONS_KEY)  # type: ignore[assignment]
        return cls({job_id: int(n) for job_id, n in raw.items()})

    @property
    def duplicated(self) -> set[str]:
        return {job_id for job_id, n in self.per_job.items() if n > 1}

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.per_job.values() if n > 1)


def worker_ids_by_pid(client: redis.Redis) -> dict[int, str]:
    ids = [str(w) for w in client.zrange(f"{PREFIX}workers", 0, -1)]
    pipe = client.pipeline(transaction=False)
    for worker_id in ids:
        pipe.hget(f"{PREFIX}worker:{worker_id}", "pid")
    return {int(pid): w for w, pid in zip(ids, pipe.execute(), strict=True) if pid}


def leftover_key_patterns(client: redis.Redis, limit: int = 20) -> list[str]:
    """Key names with ids replaced by <id>, for a readable leak report."""
    patterns: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        head, _, tail = str(key).rpartition(":")
        patterns[f"{head}:<id>" if len(tail) >= 16 else str(key)] += 1
    return [f"{name} x{n}" for name, n in patterns.most_common(limit)]


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def kill_and_restart(
    workers: list[Process], rng: random.Random, restart: Callable[[int], Process]
) -> None:
    """SIGKILLs a random worker of `workers` (a process this test started) and puts
    restart(index) in its place."""
    victim = rng.randrange(len(workers))
    workers[victim].signal(signal.SIGKILL)
    workers[victim].wait(10)
    workers[victim] = restart(victim)
