"""One job attempt, from claimed job to an Outcome Redis can always store.

The slot (worker.pool) calls the handler itself, between prepare() and finish(), so that it can
bracket the call for the watchdog. Whatever the handler does, finish() yields an Outcome: a
result that JSON cannot hold (a type, a cycle, nesting deep enough for RecursionError), any
exception (SystemExit and KeyboardInterrupt included: in a slot thread they are the handler's
own, never the worker's) and error text that is not valid UTF-8 all become a clear job error,
with the handler's traceback for the job's attempt history. Text is bounded and encodable, so
recording it can never fail on the text itself.
"""

from __future__ import annotations

import functools
import logging
import traceback as tb
from dataclasses import dataclass
from typing import Any

import redis

from workstream.common.jobs import (
    CANCELLED_ERROR,
    MAX_TRACEBACK_CHARS,
    TIMED_OUT_PREFIX,
    ClaimedJob,
)
from workstream.common.keys import Keys
from workstream.common.serialization import dumps, loads
from workstream.common.shards import shard_of
from workstream.worker.registry import (
    Handler,
    JobCancelled,
    JobContext,
    JobTimeoutError,
    PermanentError,
    RetryLater,
    lookup,
)

log = logging.getLogger("worker.job")

MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class Outcome:
    """ok -> result_json is set; otherwise error is set and permanent says whether to retry.
    traceback: the handler's, when it raised (bounded, valid UTF-8), else ""."""

    ok: bool
    result_json: str = ""
    error: str = ""
    permanent: bool = False
    timed_out: bool = False
    cancelled: bool = False  # the handler stopped on JobCancelled
    traceback: str = ""
    retry_delay_ms: int | None = None  # RetryLater: the next attempt's delay, not the backoff

    @property
    def kind(self) -> str:
        """The attempt's outcome in the job's history: failed | timed_out | cancelled."""
        return "timed_out" if self.timed_out else "cancelled" if self.cancelled else "failed"


@dataclass(frozen=True)
class Call:
    """A handler call ready to make."""

    fn: Handler
    payload: Any
    ctx: JobContext


_NONE = Outcome(True, result_json="null")


def prepare(job: ClaimedJob, worker_id: str, client: redis.Redis) -> Call | Outcome:
    """The call to make, or the Outcome when there is nothing to call."""
    fn = lookup(job.type)
    if fn is None:
        # Retried with backoff, not failed: in a rolling deploy a newer worker may handle it.
        return failed(f"no handler registered for type {job.type!r}")
    try:
        payload = loads(job.payload_json)
    except (ValueError, RecursionError) as ex:  # not JSON, or nested past the parser
        return failed(f"payload is not valid JSON: {_text(ex)}", permanent=True)
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
        lease=job.lease,
        keys=_keys(job.namespace, shard_of(job.id)) if job.namespace else None,
    )
    return Call(fn, payload, ctx)


@functools.lru_cache(maxsize=8)
def _keys(namespace: str, shard: str) -> Keys:
    return Keys(namespace, shard)


def finish(job: ClaimedJob, result: Any, error: BaseException | None) -> Outcome:
    """The Outcome of a handler that returned `result` or raised `error`."""
    if isinstance(error, JobTimeoutError):
        return timed_out(job)
    if isinstance(error, JobCancelled):  # asked for: not a handler error, no traceback
        return Outcome(False, error=CANCELLED_ERROR, permanent=True, cancelled=True)
    if error is not None:  # any handler error is the job's failure, never the worker's
        outcome = failed(
            _error_text(error),
            permanent=isinstance(error, PermanentError),
            traceback=_traceback(error),
            retry_delay_ms=_retry_delay_ms(error),
        )
        log.warning(
            "job.handler_error",
            extra={
                "job_id": job.id,
                "job_type": job.type,
                "attempt": job.attempt,
                "permanent": outcome.permanent,
                "error": outcome.error,
                "traceback": outcome.traceback,
            },
        )
        return outcome
    if result is None:
        return _NONE  # most handlers return nothing: skip the encoder
    try:
        return Outcome(True, result_json=dumps(result))
    except Exception as ex:  # TypeError, ValueError, RecursionError: the result is the problem
        return failed(
            f"result is not JSON-serialisable: {type(ex).__name__}: {_text(ex)}", permanent=True
        )


def run_job(job: ClaimedJob, worker_id: str, client: redis.Redis) -> Outcome:
    """One attempt without a watchdog (tools and tests)."""
    call = prepare(job, worker_id, client)
    if isinstance(call, Outcome):
        return call
    try:
        return finish(job, call.fn(call.payload, call.ctx), None)
    except BaseException as ex:
        return finish(job, None, ex)


def timed_out(job: ClaimedJob) -> Outcome:
    error = f"{TIMED_OUT_PREFIX}{job.timeout_ms / 1000:g}s"
    return Outcome(False, error=error, timed_out=True)


def failed(
    error: str, *, permanent: bool = False, traceback: str = "", retry_delay_ms: int | None = None
) -> Outcome:
    return Outcome(
        False,
        error=_storable(error),
        permanent=permanent,
        traceback=traceback,
        retry_delay_ms=retry_delay_ms,
    )


def _retry_delay_ms(error: BaseException) -> int | None:
    """RetryLater's delay in ms (a negative, nan or non-number delay is no delay asked)."""
    if not isinstance(error, RetryLater):
        return None
    delay = error.delay_s
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
        return None
    return round(min(delay, 10.0**9) * 1000)


def _error_text(ex: BaseException) -> str:
    """`<code>: <message>` when the exception carries a string `code` (a stable name, such as
    the http job's target_forbidden), else `<class name>: <message>`. A message that already
    starts with its code does not repeat it."""
    code = getattr(ex, "code", None)
    text = _text(ex)
    if isinstance(code, str) and code:
        return text if text.startswith(f"{code}: ") else f"{code}: {text}"
    return f"{type(ex).__name__}: {text}"


def _traceback(ex: BaseException) -> str:
    """The formatted traceback, its end kept when long (the failing frame and the error are
    last), "" when formatting itself fails: the traceback may help, it must never hurt."""
    try:
        text = "".join(tb.format_exception(type(ex), ex, ex.__traceback__))
    except Exception:
        return ""
    if len(text) > MAX_TRACEBACK_CHARS:
        marker = "...(earlier lines cut)\n"
        text = marker + text[len(text) - MAX_TRACEBACK_CHARS + len(marker) :]
    return _storable(text, MAX_TRACEBACK_CHARS, keep_end=True)


def _text(ex: BaseException) -> str:
    """str(ex), or its repr when __str__ itself fails (a handler's exception may be anything)."""
    try:
        return str(ex)
    except Exception:
        try:
            return repr(ex)
        except Exception:
            return "<unprintable>"


def _storable(text: str, limit: int = MAX_ERROR_CHARS, *, keep_end: bool = False) -> str:
    """Bounded, and valid UTF-8: a lone surrogate becomes its escape (\\udcff)."""
    text = text[-limit:] if keep_end else text[:limit]
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
        text = text[-limit:] if keep_end else text[:limit]
    return text
