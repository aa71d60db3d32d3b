"""Structured logs: message = stable event name, data = fields; one JSON object per line for
machines (LOG_FORMAT=json) or one readable line with the same fields for people (text)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, TextIO

from workstream.common.serialization import dumps
from workstream.common.settings import Settings

worker_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "worker_id", default=None
)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Attributes every LogRecord has; anything else was passed through `extra=` and is data.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# One line per request or per successful job: LOG_ROUTINE=debug files them under debug.
ROUTINE_EVENTS = frozenset({"http.request", "job.completed"})
ACCESS_LOGGER = "api.access"  # logs only http.request


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's data: context ids first, then whatever came through `extra=`."""
    fields: dict[str, Any] = {}
    worker_id = worker_id_var.get()
    if worker_id is not None:
        fields["worker_id"] = worker_id
    request_id = request_id_var.get()
    if request_id is not None:
        fields["request_id"] = request_id
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return dumps(entry)
        except (TypeError, ValueError):  # odd values or text that is not UTF-8: still one line
            flat = {k: str(v) for k, v in entry.items()}
            return json.dumps(flat, ensure_ascii=True, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`12:00:01.234 info    worker.fetcher job.completed job_id=... job_type=echo`: the JSON
    line's fields as key=value (quoted when they hold spaces, lists joined by commas); text of
    several lines (a handler's `traceback` field, an exception) on the lines below, as is."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [
            f"{stamp}.{int(record.msecs):03d}",
            f"{record.levelname.lower():<7}",
            record.name,
            record.getMessage(),
        ]
        below: list[str] = []
        for key, value in _fields(record).items():
            if isinstance(value, str) and "\n" in value:
                below.append(f"{key}:\n{value.rstrip()}")
                continue
            text = _plain(value)
            if not text or any(c.isspace() or c in '"=' for c in text):
                text = json.dumps(text, ensure_ascii=False)
            parts.append(f"{key}={text}")
        if record.exc_info:
            below.append(self.formatException(record.exc_info))
        return "\n".join([" ".join(parts), *below])


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return ",".join(str(v) for v in value)
    try:
        return dumps(value)
    except (TypeError, ValueError):
        return str(value)


class RoutineFilter(logging.Filter):
    """Files the per-request and per-job lines under debug: shown only at LOG_LEVEL=debug."""

    def __init__(self, shown: bool) -> None:
        super().__init__()
        self._shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in ROUTINE_EVENTS:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self._shown


def chosen_format(log_format: str, stream: TextIO) -> str:
    """An explicit LOG_FORMAT wins; otherwise people at a terminal read text, pipes get JSON."""
    if log_format:
        return log_format
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a replaced or closed stream
        return "json"


def configure_logging(config: Settings, stream: TextIO | None = None) -> None:
    """From Settings: LOG_LEVEL, LOG_FORMAT, LOG_ROUTINE."""
    level, log_format, routine = config.log_level, config.log_format, config.log_routine
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    text = chosen_format(log_format, out) == "text"
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.setLevel(level.upper())
    debug = root.level <= logging.DEBUG
    access = logging.getLogger(ACCESS_LOGGER)
    if routine == "debug":
        handler.addFilter(RoutineFilter(shown=debug))
        # Not even built when hidden: the access line's fields cost CPU on every request.
        access.setLevel(logging.NOTSET if debug else logging.WARNING)
    else:
        access.setLevel(logging.NOTSET)
    root.handlers[:] = [handler]
    # waitress logs its own text lines; keep only its warnings, in our format.
    logging.getLogger("waitress").setLevel(logging.WARNING)
