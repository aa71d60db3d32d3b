"""Handlers for the browser tests (loaded with WORKER_HANDLERS=tests.browser.handlers)."""

from __future__ import annotations

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
