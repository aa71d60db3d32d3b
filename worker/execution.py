"""Runs one job attempt: decode the payload, call the handler, classify the outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from workstream.common.jobs import ClaimedJob
from workstream.common.serialization import dumps, loads
from workstream.worker.registry import JobContext, JobTimeoutError, PermanentError, lookup

log = logging.getLogger("worker.job")


@dataclass(frozen=True)
class Outcome:
    """ok -> result_json is set; otherwise error is set and permanent says whether to retry."""

    ok: bool
    result_json: str = ""
    error: str = ""
    permanent: bool = False
    timed_out: bool = False


def run_job(job: ClaimedJob, worker_id: str, client: redis.Redis) -> Outcome:
    fn = lookup(job.type)
    if fn is None:
        return Outcome(False, error=f"no handler registered for type {job.type!r}", permanent=True)
    try:
        payload = loads(job.payload_json)
    except ValueError as ex:
        return Outcome(False, error=f"payload is not valid JSON: {ex}", permanent=True)
    ctx = JobContext(
        job_id=job.id,
        job_type=job.type,
        queue=job.queue,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        worker_id=worker_id,
        timeout_s=job.timeout_ms / 1000,
        redis=client,
        log=log,
    )
    try:
        result = fn(payload, ctx)
    except JobTimeoutError:
        return Outcome(False, error=f"timed out after {job.timeout_ms / 1000:g}s", timed_out=True)
    except PermanentError as ex:
        return Outcome(False, error=f"PermanentError: {ex}", permanent=True)
    except Exception as ex:  # any handler error is the job's failure, never the worker's
        return Outcome(False, error=f"{type(ex).__name__}: {ex}"[:4000])
    try:
        return Outcome(True, result_json=dumps(result))
    except (TypeError, ValueError) as ex:
        return Outcome(False, error=f"result is not JSON-serialisable: {ex}", permanent=True)
