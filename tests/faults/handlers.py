"""Handlers for the fault suites, loaded with WORKER_HANDLERS=tests.faults.handlers.

Each records every execution it starts in the `executions` hash of the Redis it runs against
(job id -> count), so a suite can count duplicate executions after the fact.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from tests.support.faults import nested
from workstream.worker.registry import JobContext, handler

EXECUTIONS_KEY = "faults:executions"


def _record(ctx: JobContext) -> None:
    ctx.redis.hincrby(EXECUTIONS_KEY, ctx.job_id, 1)


@handler("fault_work")
def work(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """`{"ms": n}` busy-waits n milliseconds (0 = instant) after recording the execution."""
    _record(ctx)
    ms = int(payload.get("ms", 0)) if isinstance(payload, dict) else 0
    if ms:
        time.sleep(ms / 1000)
    return {"ok": True}


@handler("fault_poison")
def poison(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """`{"poison": true}` kills the whole worker process, as a segfaulting C extension would."""
    _record(ctx)
    if isinstance(payload, dict) and payload.get("poison"):
        os._exit(137)
    return {"ok": True}


WORKERS_KEY = "faults:workers"  # worker id -> executions started there


@handler("fault_tagged")
def tagged(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """fault_work that also counts which worker ran it (one round trip for both counts)."""
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hincrby(EXECUTIONS_KEY, ctx.job_id, 1)
    pipe.hincrby(WORKERS_KEY, ctx.worker_id, 1)
    pipe.execute()
    ms = int(payload.get("ms", 0)) if isinstance(payload, dict) else 0
    if ms:
        time.sleep(ms / 1000)
    return {"ok": True}


@handler("fault_exit")
def leave(payload: Any, ctx: JobContext) -> Any:
    """Leaves the handler as `{"how": ...}` says: system_exit, keyboard_interrupt,
    lone_surrogate (an error message Redis cannot store as UTF-8), deep_result (nested past any
    encoder's limit) or unencodable (an object JSON has no form for)."""
    _record(ctx)
    how = payload["how"]
    if how == "system_exit":
        raise SystemExit(1)
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt
    if how == "lone_surrogate":
        raise RuntimeError("bad \udcff")
    if how == "deep_result":
        return nested(100_000)
    if how == "unencodable":
        return {"value": object()}
    raise ValueError(f"unknown way out: {how!r}")


@handler("fault_gil_regex")
def gil_regex(payload: Any, ctx: JobContext) -> bool:
    """A catastrophic regex: C code that never releases the GIL, so the whole process stops
    (heartbeat and watchdog included) for longer than any test runs."""
    _record(ctx)
    return re.match(r"(a+)+$", "a" * 40 + "b") is not None


DAG_SEQ_KEY = "faults:dag:seq"  # one counter orders every start and finish
DAG_STARTED_KEY = "faults:dag:started"  # job id -> its first start
DAG_FINISHED_KEY = "faults:dag:finished"  # job id -> its last finish
DAG_NO_RESULT_KEY = "faults:dag:no_result"  # job id -> runs that found a parent without result


@handler("fault_dag")
def dag(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """fault_work for a job with depends_on: records when it started and finished on one
    counter, and whether every parent's result was there (ctx.parent_results)."""
    _record(ctx)
    started = ctx.redis.incr(DAG_SEQ_KEY)
    ctx.redis.hsetnx(DAG_STARTED_KEY, ctx.job_id, started)
    if any(result is None for result in ctx.parent_results.values()):
        ctx.redis.hincrby(DAG_NO_RESULT_KEY, ctx.job_id, 1)
    ms = int(payload.get("ms", 0)) if isinstance(payload, dict) else 0
    if ms:
        time.sleep(ms / 1000)
    ctx.redis.hset(DAG_FINISHED_KEY, ctx.job_id, ctx.redis.incr(DAG_SEQ_KEY))
    return {"job": ctx.job_id}
