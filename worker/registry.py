"""The handler registry: `@handler("email_send")` on a function taking (payload, ctx)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from workstream.common.errors import WorkStreamError
from workstream.common.jobs import TYPE_PATTERN


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without retries."""


class JobTimeoutError(BaseException):
    """Raised inside a handler thread when its job runs past its timeout. A BaseException so
    that a handler's `except Exception` cannot swallow it."""


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
