"""RQ: `rq worker --worker-class rq.worker.SimpleWorker`, two worker processes, RQ's defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import redis
from rq import Queue

from bench.core import System
from bench.peers.tasks_common import REDIS_URL_ENV, do_incr, do_latency

BATCH = 1000


def incr(key: str) -> None:
    do_incr(key)


def latency(key: str, list_key: str, t0_us: int) -> None:
    do_latency(key, list_key, t0_us)


class RQSystem(System):
    name = "rq"
    bulk_api = "Queue.enqueue_many(1000 jobs) (one pipeline)"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.connection = redis.Redis.from_url(url)
        self.queue = Queue("bench", connection=self.connection)

    def enqueue_incr(self, key: str) -> None:
        self.queue.enqueue(incr, key)

    def enqueue_incr_bulk(self, key: str, n: int) -> None:
        for start in range(0, n, BATCH):
            count = min(BATCH, n - start)
            self.queue.enqueue_many([Queue.prepare_data(incr, (key,)) for _ in range(count)])

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        self.queue.enqueue(latency, key, list_key, t0_us)

    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        cli = str(Path(sys.executable).parent / "rq")
        cmd = [
            cli,
            "worker",
            "--url",
            self.redis_url,
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--logging_level",
            "WARNING",
            "bench",
        ]
        return [(cmd, {REDIS_URL_ENV: self.redis_url}) for _ in range(procs)]

    def workers_ready(self, r: redis.Redis, procs: int) -> bool | None:
        return int(r.scard("rq:workers")) >= procs

    def close(self) -> None:
        self.connection.close()
