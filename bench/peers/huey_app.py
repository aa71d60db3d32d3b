"""Huey: RedisHuey with its defaults; consumer `huey_consumer ... -w 2 -k process`.

The Redis URL comes from BENCH_REDIS_URL, set before this module is imported."""

from __future__ import annotations

import sys
from pathlib import Path

from huey import RedisHuey

from bench.core import System
from bench.peers.tasks_common import REDIS_URL_ENV, do_incr, do_latency, redis_url

huey = RedisHuey("bench", url=redis_url())


@huey.task()
def incr(key: str) -> None:
    do_incr(key)


@huey.task()
def latency(key: str, list_key: str, t0_us: int) -> None:
    do_latency(key, list_key, t0_us)


class HueySystem(System):
    name = "huey"
    bulk_api = None  # Huey enqueues one task per call

    def enqueue_incr(self, key: str) -> None:
        incr(key)

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        latency(key, list_key, t0_us)

    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        consumer = str(Path(sys.executable).parent / "huey_consumer")
        cmd = [consumer, "bench.peers.huey_app.huey", "-w", str(procs), "-k", "process", "-q"]
        return [(cmd, {REDIS_URL_ENV: self.redis_url})]
