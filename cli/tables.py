"""Human-readable output: aligned tables and key/value records. Pure functions over the API's
JSON shapes, so they are tested without a network."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "-"
ERROR_WIDTH = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$")


def cell(value: Any) -> str:
    """One value as one line of text: None is '-', booleans yes/no, JSON compact."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # A newline or escape sequence in data (an error message, a payload) must not break the
    # layout or drive the terminal.
    return _CONTROL.sub(" ", text)


def truncate(text: str, width: int) -> str:
    if width < 1 or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def timestamp(value: Any) -> str:
    """RFC 3339 UTC as 'YYYY-MM-DD HH:MM:SS' (UTC); other values as cell() shows them."""
    if isinstance(value, str):
        match = _TIMESTAMP.match(value)
        if match:
            return f"{match.group(1)} {match.group(2)}"
    return cell(value)


def age(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return cell(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "") -> str:
    """Columns padded to their widest cell; numeric columns right-aligned. Returns the text
    without a trailing newline; `empty` when there are no rows."""
    if not rows:
        return empty
    texts = [[cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in texts:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    numeric = [
        all(_is_number(row[i]) or row[i] is None for row in rows)
        and any(_is_number(row[i]) for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i])
            for i, value in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in texts)])


def render_record(pairs: Sequence[tuple[str, Any]]) -> str:
    """`key  value` lines with the keys padded to one width."""
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key.ljust(width)}  {cell(value)}".rstrip() for key, value in pairs)


# -- WorkStream shapes -------------------------------------------------------------------------

JOB_FIELDS = (
    "id",
    "type",
    "queue",
    "status",
    "attempts",
    "max_attempts",
    "timeout",
    "payload",
    "result",
    "error",
    "worker",
    "idempotency_key",
)
JOB_TIMES = ("created_at", "enqueued_at", "run_at", "started_at", "finished_at")


def job_detail(job: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, Any]] = [(name, job.get(name)) for name in JOB_FIELDS]
    pairs += [(name, timestamp(job.get(name))) for name in JOB_TIMES]
    return render_record(pairs)


def jobs_table(jobs: Sequence[Mapping[str, Any]]) -> str:
    headers = ("ID", "TYPE", "QUEUE", "STATUS", "ATTEMPTS", "CREATED", "FINISHED")
    rows = [
        (
            job.get("id"),
            job.get("type"),
            job.get("queue"),
            job.get("status"),
            f"{cell(job.get('attempts'))}/{cell(job.get('max_attempts'))}",
            timestamp(job.get("created_at")),
            timestamp(job.get("finished_at")),
        )
        for job in jobs
    ]
    return render_table(headers, rows, empty="no jobs")


def failed_table(jobs: Sequence[Mapping[str, Any]]) -> str:
    headers = ("ID", "TYPE", "QUEUE", "ATTEMPTS", "FINISHED", "ERROR")
    rows = [
        (
            job.get("id"),
            job.get("type"),
            job.get("queue"),
            job.get("attempts"),
            timestamp(job.get("finished_at")),
            truncate(cell(job.get("error")), ERROR_WIDTH),
        )
        for job in jobs
    ]
    return render_table(headers, rows, empty="no failed jobs")


def queues_table(queues: Sequence[Mapping[str, Any]]) -> str:
    headers = ("QUEUE", "PENDING", "PROCESSING", "SCHEDULED", "FAILED", "PAUSED")
    rows = [
        (
            queue.get("name"),
            queue.get("pending"),
            queue.get("processing"),
            queue.get("scheduled"),
            queue.get("failed"),
            queue.get("paused"),
        )
        for queue in queues
    ]
    return render_table(headers, rows, empty="no queues")


def workers_table(workers: Sequence[Mapping[str, Any]]) -> str:
    headers = ("WORKER", "HOST", "PID", "QUEUES", "BUSY", "STARTED", "HEARTBEAT")
    rows = []
    for worker in workers:
        queues = worker.get("queues")
        rows.append(
            (
                worker.get("id"),
                worker.get("host"),
                worker.get("pid"),
                ",".join(str(q) for q in queues) if isinstance(queues, list) else queues,
                f"{cell(worker.get('slots_busy'))}/{cell(worker.get('slots_total'))}",
                timestamp(worker.get("started_at")),
                _ago(worker.get("heartbeat_age_s")),
            )
        )
    return render_table(headers, rows, empty="no live workers")


def _ago(seconds: Any) -> str:
    return f"{age(seconds)} ago" if _is_number(seconds) else cell(seconds)
