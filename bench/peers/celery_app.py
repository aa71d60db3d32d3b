"""Celery: Redis broker, no result backend (Celery's default); `celery worker -P prefork -c 2`.

The Redis URL comes from BENCH_REDIS_URL, set before this module is imported."""

from __future__ import annotations

import sys
from pathlib import Path

from celery import Celery, group

from bench.core import System
from bench.peers.tasks_common import REDIS_URL_ENV, do_incr, do_latency, redis_url

app = Celery("bench", broker=redis_url())

GROUP_SIZE = 1000


@app.task(name="bench.incr")
def incr(key: str) -> None:
    do_incr(key)


@app.task(name="bench.latency")
def latency(key: str, list_key: str, t0_us: int) -> None:
    do_latency(key, list_key, t0_us)


class CelerySystem(System):
    name = "celery"
    bulk_api = "celery.group(1000 signatures).apply_async()"

    def enqueue_incr(self, key: str) -> None:
        incr.delay(key)

    def enqueue_incr_bulk(self, key: str, n: int) -> None:
        for start in range(0, n, GROUP_SIZE):
            count = min(GROUP_SIZE, n - start)
            group(incr.s(key) for _ in range(count)).apply_async()

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        latency.delay(key, list_key, t0_us)

    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        cli = str(Path(sys.executable).parent / "celery")
        cmd = [
            cli,
            "-A",
            "bench.peers.celery_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(procs),
            "--loglevel",
            "WARNING",
        ]
        return [(cmd, {REDIS_URL_ENV: self.redis_url})]

    def close(self) -> None:
        app.close()
