"""arq: two worker processes (`python -m bench.peers.arq_app` = arq's run_worker on
WorkerSettings, arq's defaults: max_jobs=10 per process). The task bodies use the worker's own
ArqRedis connection (ctx["redis"]), as arq tasks normally do.

The Redis URL comes from BENCH_REDIS_URL, set before this module is imported."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import run_worker

from bench.core import LATENCY_LUA, System
from bench.peers.tasks_common import REDIS_URL_ENV, redis_url

_scripts: dict[int, Any] = {}


async def incr(ctx: dict[str, Any], key: str) -> None:
    await ctx["redis"].incr(key)


async def latency(ctx: dict[str, Any], key: str, list_key: str, t0_us: int) -> None:
    client = ctx["redis"]
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(LATENCY_LUA)
    await script(keys=[key, list_key], args=[t0_us])


class WorkerSettings:
    functions: ClassVar[list[Any]] = [incr, latency]
    redis_settings = RedisSettings.from_dsn(redis_url())


class ArqSystem(System):
    name = "arq"
    bulk_api = None  # arq enqueues one job per call

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(url)))

    def enqueue_incr(self, key: str) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("incr", key))

    def enqueue_incr_many(self, key: str, n: int) -> None:
        async def many() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("incr", key)

        self.loop.run_until_complete(many())

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("latency", key, list_key, t0_us))

    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        cmd = [sys.executable, "-m", "bench.peers.arq_app"]
        return [(cmd, {REDIS_URL_ENV: self.redis_url}) for _ in range(procs)]

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()


if __name__ == "__main__":
    # As `arq WorkerSettings` does, but logging at WARNING like every other system here.
    logging.basicConfig(level=logging.WARNING)
    run_worker(WorkerSettings)  # type: ignore[arg-type]
