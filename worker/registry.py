"""The handler registry: `@handler("email_send")` on a function taking (payload, ctx)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from workstream.common.errors import WorkStreamError
from workstream.common.jobs import MAX_PROGRESS_BYTES, TYPE_PATTERN
from workstream.common.keys import Keys
from workstream.common.serialization import dumps

# ctx.cancelled asks Redis at most this often: a handler may check it in a tight loop.
CANCEL_CHECK_S = 0.2


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without retries."""


class RetryLater(Exception):
    """Raise from a handler to fail this attempt and have the next one wait `delay_s` seconds
    (say, a server's Retry-After) instead of the job's backoff; at most RETRY_AFTER_MAX. The
    job's attempts still bound the retries: the last attempt fails the job for good."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class JobTimeoutError(BaseException):
    """Raised inside a handler thread when its job runs past its timeout. A BaseException so
    that a handler's `except Exception` cannot swallow it."""


class JobCancelled(BaseException):
    """Raised in a handler at its next checkpoint (ctx.heartbeat(), ctx.progress()) once the
    job's cancel was requested (POST /jobs/{id}/cancel while it runs); the job then ends
    cancelled. A BaseException, as JobTimeoutError, so that `except Exception` lets it through;
    a handler that catches it and returns still ends cancelled."""


@dataclass
class _CancelCheck:
    requested: bool = False
    checked_at: float = float("-inf")


@dataclass
class _Parents:
    results: dict[str, Any] | None = None  # read once, on first use


@dataclass(frozen=True)
class JobContext:
    job_id: str
    job_type: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    timeout_s: float
    redis: redis.Redis
    log: logging.Logger
    lease: str = ""
    keys: Keys | None = None  # None: a context made by hand (tests): nothing is ever cancelled
    _check: _CancelCheck = field(default_factory=_CancelCheck, repr=False, compare=False)
    _parents: _Parents = field(default_factory=lambda: _Parents(), repr=False, compare=False)

    @property
    def parent_results(self) -> dict[str, Any]:
        """Each parent's id (depends_on) with its result, read from Redis on first use: {} for
        a job without parents. A parent that failed or was cancelled (on_parent_failure=run),
        whose record expired, or whose result would pass MAX_PARENT_RESULTS_BYTES (1 MiB of
        JSON for all parents together; common/deps.py) reads as None."""
        if self._parents.results is None:
            if self.keys is None:  # a context made by hand (tests)
                return {}
            from workstream.common.deps import parent_results

            self._parents.results = parent_results(self.redis, self.keys, self.job_id)
        return self._parents.results

    @property
    def cancelled(self) -> bool:
        """Whether a cancel of this job was requested. Cheap enough for a loop: Redis is asked
        at most every CANCEL_CHECK_S, and a yes is kept."""
        check = self._check
        if check.requested or self.keys is None:
            return check.requested
        now = time.monotonic()
        if now - check.checked_at >= CANCEL_CHECK_S:
            check.checked_at = now
            try:
                flag = self.redis.hget(self.keys.job(self.job_id), "cancel_requested")
            except redis.exceptions.RedisError:
                return False  # a check that cannot be made must not fail the job; asked again
            check.requested = flag in ("1", b"1")
        return check.requested

    def heartbeat(self) -> None:
        """A checkpoint: raises JobCancelled once a cancel of this job was requested."""
        if self.cancelled:
            raise JobCancelled(self.job_id)

    def progress(self, value: Any, message: str | None = None) -> None:
        """Stores `{"value": value, "message": message}` on the job (GET /jobs/{id} shows it as
        `progress`; at most MAX_PROGRESS_BYTES of JSON, else ValueError), then is a checkpoint:
        raises JobCancelled once a cancel was requested."""
        text = dumps({"value": value, "message": message})
        if len(text.encode("utf-8")) > MAX_PROGRESS_BYTES:
            raise ValueError(f"progress is over {MAX_PROGRESS_BYTES} bytes of JSON")
        if self.keys is not None:
            # Imported here: `import workstream` (handler modules, the client) stays light.
            from workstream.common.store import record_progress

            try:
                requested = record_progress(self.redis, self.keys, self.job_id, self.lease, text)
            except redis.exceptions.RedisError as ex:  # progress is advisory: the job goes on
                self.log.warning(
                    "job.progress_lost", extra={"job_id": self.job_id, "error": str(ex)}
                )
            else:
                self._check.checked_at = time.monotonic()  # the reply carried the flag
                self._check.requested = self._check.requested or bool(requested)
        self.heartbeat()


Handler = Callable[[Any, JobContext], Any]
_HANDLERS: dict[str, Handler] = {}


class HandlerRegistrationError(WorkStreamError):
    pass


class HandlerImportError(WorkStreamError):
    """A WORKER_HANDLERS module that cannot be imported; the message is one line."""


def handler(job_type: str) -> Callable[[Handler], Handler]:
    """Registers the decorated function for jobs of `job_type`."""
    if not TYPE_PATTERN.fullmatch(job_type):
        raise HandlerRegistrationError(f"invalid job type {job_type!r}")

    def register(fn: Handler) -> Handler:
        existing = _HANDLERS.get(job_type)
        if existing is not None and existing is not fn:
            raise HandlerRegistrationError(f"a handler for {job_type!r} is already registered")
        _HANDLERS[job_type] = fn
        return fn

    return register


def lookup(job_type: str) -> Handler | None:
    return _HANDLERS.get(job_type)


def registered_types() -> list[str]:
    return sorted(_HANDLERS)


def load_modules(modules: Iterable[str]) -> None:
    """Imports the built-ins and every module named in WORKER_HANDLERS (they register). The
    current directory comes first on the import path, as for `python -m`, `celery -A` and
    `rq worker`: an installed console script would otherwise not see `myapp/` beside it."""
    importlib.import_module("workstream.worker.builtin")
    importlib.import_module("workstream.worker.http_job")  # the built-in `http` type
    try:
        cwd = os.getcwd()
    except OSError:  # the directory was removed under us: nothing to add
        cwd = ""
    if cwd and cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as ex:  # the module's own error, whatever it is: name it in one line
            raise HandlerImportError(
                f"WORKER_HANDLERS: cannot import {module!r}: {_summary(ex)}"
            ) from ex


def _summary(ex: BaseException) -> str:
    """`Type: first line of the message`, bounded (a SyntaxError names file and line)."""
    lines = str(ex).strip().splitlines()
    text = f"{type(ex).__name__}: {lines[0]}" if lines else type(ex).__name__
    return text[:300]
