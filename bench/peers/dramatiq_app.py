"""Dramatiq: RedisBroker with its default middleware; `dramatiq ... --processes 2 --threads 8`.

The Redis URL comes from BENCH_REDIS_URL, set before this module is imported."""

from __future__ import annotations

import sys
from pathlib import Path

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.core import System
from bench.peers.tasks_common import REDIS_URL_ENV, do_incr, do_latency, redis_url

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)

GROUP_SIZE = 1000


@dramatiq.actor
def incr(key: str) -> None:
    do_incr(key)


@dramatiq.actor
def latency(key: str, list_key: str, t0_us: int) -> None:
    do_latency(key, list_key, t0_us)


class DramatiqSystem(System):
    name = "dramatiq"
    # dramatiq.group(...).run() is the natural bulk call; it sends one message per job.
    bulk_api = "dramatiq.group(1000 messages).run()"

    def enqueue_incr(self, key: str) -> None:
        incr.send(key)

    def enqueue_incr_bulk(self, key: str, n: int) -> None:
        for start in range(0, n, GROUP_SIZE):
            count = min(GROUP_SIZE, n - start)
            dramatiq.group([incr.message(key) for _ in range(count)]).run()

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        latency.send(key, list_key, t0_us)

    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        cli = str(Path(sys.executable).parent / "dramatiq")
        cmd = [cli, "bench.peers.dramatiq_app", "--processes", str(procs), "--threads", "8"]
        return [(cmd, {REDIS_URL_ENV: self.redis_url})]
