"""WorkStream's bench handlers (WORKER_HANDLERS=bench.handlers). Each does the same Redis work
as the peers' task bodies in bench/peers/tasks_common.py: one round trip."""

from __future__ import annotations

from typing import Any

from bench.core import LATENCY_LUA
from workstream.worker.registry import JobContext, handler

_scripts: dict[int, Any] = {}


@handler("bench_incr")
def bench_incr(payload: dict[str, Any], ctx: JobContext) -> None:
    """One INCR of the counter key named in the payload."""
    ctx.redis.incr(payload["key"])


@handler("bench_latency")
def bench_latency(payload: dict[str, Any], ctx: JobContext) -> None:
    """One EVALSHA: Redis TIME, INCR of the counter, RPUSH of (now - payload t0_us)."""
    script = _scripts.get(id(ctx.redis))
    if script is None:
        script = _scripts[id(ctx.redis)] = ctx.redis.register_script(LATENCY_LUA)
    script(keys=[payload["key"], payload["list"]], args=[payload["t0_us"]])
