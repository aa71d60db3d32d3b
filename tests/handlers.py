"""Handlers used by the engine tests (loaded with WORKER_HANDLERS=tests.handlers)."""

from __future__ import annotations

import time
from typing import Any

from workstream.worker.registry import JobContext, handler


@handler("record_order")
def record_order(payload: Any, ctx: JobContext) -> None:
    """Appends the job's payload tag to a Redis list, so tests see execution order."""
    ctx.redis.rpush("test:order", str(payload["tag"]))


@handler("burn_cpu")
def burn_cpu(payload: Any, ctx: JobContext) -> int:
    """Pure-Python CPU work for `seconds`: heartbeats must keep flowing meanwhile."""
    deadline = time.monotonic() + float(payload["seconds"])
    spins = 0
    while time.monotonic() < deadline:
        spins += sum(range(200))
    return spins


@handler("block_in_c")
def block_in_c(payload: Any, ctx: JobContext) -> str:
    """One long C-level sleep that a timeout cannot interrupt."""
    time.sleep(float(payload["seconds"]))
    return "woke"


@handler("count_runs")
def count_runs(payload: Any, ctx: JobContext) -> int:
    """Counts executions per job id (duplicates show up as counts above 1)."""
    if payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    return int(ctx.redis.hincrby("test:runs", ctx.job_id, 1))


@handler("count_then_sleep")
def count_then_sleep(payload: Any, ctx: JobContext) -> int:
    """Counts the execution first (so a Redis refusing writes later cannot fail the job), then
    sleeps `sleep` seconds."""
    runs = int(ctx.redis.hincrby("test:runs", ctx.job_id, 1))
    time.sleep(float(payload.get("sleep", 0)))
    return runs


@handler("overlap")
def overlap(payload: Any, ctx: JobContext) -> int:
    """Counts the runs of payload `key` going on at once, seen from inside the handlers (not
    from the gauges the limits use): each run appends the count at its start to
    test:overlap:<key>, then sleeps `sleep` seconds."""
    key = str(payload["key"])
    running = int(ctx.redis.incr(f"test:running:{key}"))
    ctx.redis.rpush(f"test:overlap:{key}", running)
    try:
        time.sleep(float(payload.get("sleep", 0)))
    finally:
        ctx.redis.decr(f"test:running:{key}")
    return running
