"""Built-in handlers: echo, sleep and fail (for trying WorkStream out and for tests)."""

from __future__ import annotations

import time
from typing import Any

from workstream.worker.registry import JobContext, PermanentError, handler

SLEEP_STEP_S = 0.05


@handler("echo")
def echo(payload: Any, ctx: JobContext) -> Any:
    return payload


@handler("sleep")
def sleep(payload: Any, ctx: JobContext) -> dict[str, float]:
    seconds = float(payload.get("seconds", 1)) if isinstance(payload, dict) else 1.0
    # Short steps so a timeout (delivered between bytecodes) or a cancel (the checkpoint asks
    # Redis at most every CANCEL_CHECK_S) interrupts it promptly.
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ctx.heartbeat()
        time.sleep(min(left, SLEEP_STEP_S))
    return {"slept": seconds}


@handler("fail")
def fail(payload: Any, ctx: JobContext) -> dict[str, int]:
    """`{"times": n}` fails the first n attempts then succeeds; `{"permanent": true}` fails
    without retry; anything else always fails."""
    options = payload if isinstance(payload, dict) else {}
    if options.get("permanent"):
        raise PermanentError("failed permanently on request")
    times = options.get("times")
    if isinstance(times, int) and ctx.attempt > times:
        return {"succeeded_on_attempt": ctx.attempt}
    raise RuntimeError(f"failed on request (attempt {ctx.attempt})")
