"""Handlers for the fault suites, loaded with WORKER_HANDLERS=tests.faults.handlers.

Each records every execution it starts in the `executions` hash of the Redis it runs against
(job id -> count), so a suite can count duplicate executions after the fact.
"""

from __future__ import annotations

import os
import time
from typing import Any

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
