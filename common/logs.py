"""Structured logs: one JSON object per line, message = stable event name, data = fields."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from workstream.common.serialization import dumps

worker_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "worker_id", default=None
)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Attributes every LogRecord has; anything else was passed through `extra=` and is data.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        worker_id = worker_id_var.get()
        if worker_id is not None:
            entry["worker_id"] = worker_id
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return dumps(entry)
        except (TypeError, ValueError):  # odd values or text that is not UTF-8: still one line
            flat = {k: str(v) for k, v in entry.items()}
            return json.dumps(flat, ensure_ascii=True, separators=(",", ":"))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # waitress logs its own text lines; keep only its warnings, in our format.
    logging.getLogger("waitress").setLevel(logging.WARNING)
