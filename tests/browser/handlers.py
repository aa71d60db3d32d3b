"""Handlers for the browser tests (loaded with WORKER_HANDLERS=tests.browser.handlers)."""

from __future__ import annotations

import time
from typing import Any

from workstream.worker.registry import JobContext, PermanentError, handler

RUNS_KEY = "browser-test:runs"


@handler("fail_first_run")
def fail_first_run(payload: Any, ctx: JobContext) -> dict[str, int]:
    """Fails permanently the first time a job runs and succeeds on any later run.

    The count lives in Redis per job id, so it survives the operator retry that resets the
    job's attempts (the built-in `fail` with `times` counts attempts, which a retry restarts).
    """
    runs = int(ctx.redis.hincrby(RUNS_KEY, ctx.job_id, 1))
    if runs == 1:
        raise PermanentError("fails on its first run, on purpose")
    return {"runs": runs}


@handler("report_until_cancelled")
def report_until_cancelled(payload: Any, ctx: JobContext) -> str:
    """Reports 45% once, then waits for a cancel (bounded: 60 s) and takes 3 s more to stop, so
    the page shows the job processing with its cancel requested for a while."""
    ctx.progress(0.45, "3 of 10 files")
    for _ in range(600):
        if ctx.cancelled:
            time.sleep(3)
            return "stopped"
        time.sleep(0.1)
    return "never cancelled"
