"""Human-readable output: aligned tables and key/value records. Pure functions over the API's
JSON shapes, so they are tested without a network."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

MISSING = "-"
ERROR_WIDTH = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Multi-line text (tracebacks) keeps its newlines; other control characters still go.
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]+")
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
    """RFC 3339 UTC as 'YYYY-MM-DD HH:MM:SS UTC' (the zone always shown: a bare time is read
    as local time by whoever reads it); other values as cell() shows them."""
    if isinstance(value, str):
        match = _TIMESTAMP.match(value)
        if match:
            return f"{match.group(1)} {match.group(2)} UTC"
    return cell(value)


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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


# Shown when set: where the job's record goes when it ends, the http job delivering it, and
# (on that http job) the job it reports.
CALLBACK_FIELDS = ("callback_url", "callback_job_id", "callback_for")


def job_detail(job: Mapping[str, Any]) -> str:
    """The job's fields, then its attempt history (oldest first) with each traceback, when
    the server records history."""
    pairs: list[tuple[str, Any]] = [(name, job.get(name)) for name in JOB_FIELDS]
    if job.get("cancel_requested") is True:
        pairs[JOB_FIELDS.index("status")] = ("status", f"{cell(job.get('status'))} (cancelling…)")
    if job.get("progress") is not None:
        pairs.insert(JOB_FIELDS.index("status") + 1, ("progress", progress_text(job["progress"])))
    pairs += dependency_pairs(job)
    pairs += [(name, job[name]) for name in CALLBACK_FIELDS if job.get(name)]
    pairs += [(name, timestamp(job.get(name))) for name in JOB_TIMES]
    text = render_record(pairs)
    history = job.get("history")
    if isinstance(history, list):
        text += "\n\n" + history_text([a for a in history if isinstance(a, Mapping)])
    return text


def dependency_pairs(job: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """depends_on (with what a failed parent does, and how many are left while waiting) and
    the children, when the job has any."""
    pairs: list[tuple[str, Any]] = []
    parents = job.get("depends_on")
    if isinstance(parents, list) and parents:
        text = ", ".join(str(p) for p in parents)
        pairs.append(("depends_on", f"{text} (on_parent_failure: {job.get('on_parent_failure')})"))
        if job.get("status") == "waiting":
            pairs.append(("parents_left", job.get("parents_left")))
    children = job.get("children")
    count = job.get("children_count")
    if isinstance(children, list) and children:
        text = ", ".join(str(c) for c in children)
        if isinstance(count, int) and count > len(children):
            text += f" … ({count} in all)"
        pairs.append(("children", text))
    return pairs


def progress_text(progress: Any) -> str:
    """A handler's report: `45% — 3 of 10 files` when its value is a fraction in [0, 1], else
    the value as JSON, then the message."""
    if isinstance(progress, Mapping) and set(progress) <= {"value", "message"}:
        value, message = progress.get("value"), progress.get("message")
        text = (
            f"{value * 100:.0f}%"
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
            else cell(value)
            if value is not None
            else ""
        )
        if isinstance(message, str) and message:
            text = f"{text} — {cell(message)}" if text else cell(message)
        return text or MISSING
    return cell(progress)


def history_text(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return "history: no attempts yet"
    headers = ("ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME", "ERROR")
    rows = [
        (
            attempt.get("attempt"),
            attempt.get("worker"),
            timestamp(attempt.get("started_at")),
            timestamp(attempt.get("ended_at")),
            attempt.get("outcome"),
            truncate(cell(attempt.get("error")), ERROR_WIDTH),
        )
        for attempt in history
    ]
    parts = [f"history (oldest first)\n{render_table(headers, rows)}"]
    for attempt in history:
        trace = attempt.get("traceback")
        if isinstance(trace, str) and trace.strip():
            body = _CONTROL_BUT_NEWLINE.sub(" ", trace.rstrip())
            indented = "\n".join("    " + line for line in body.splitlines())
            parts.append(f"traceback of attempt {cell(attempt.get('attempt'))}:\n{indented}")
    return "\n\n".join(parts)


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
    """Counts per queue; a WORKERS column and warnings below the table when the server says
    how many workers serve each queue and which job types none of them handles."""
    headers: tuple[str, ...] = ("QUEUE", "PENDING", "PROCESSING", "SCHEDULED", "FAILED", "PAUSED")
    with_workers = any("workers" in queue for queue in queues)
    # Jobs waiting for their parents (depends_on): a column once any queue holds some.
    with_waiting = any(_is_number(q.get("waiting")) and q.get("waiting") for q in queues)
    if with_waiting:
        headers = (*headers[:4], "WAITING", *headers[4:])
    if with_workers:
        headers += ("WORKERS",)
    rows = []
    for queue in queues:
        row = [
            queue.get("name"),
            queue.get("pending"),
            queue.get("processing"),
            queue.get("scheduled"),
            queue.get("failed"),
            queue.get("paused"),
        ]
        if with_waiting:
            row.insert(4, queue.get("waiting"))
        if with_workers:
            row.append(queue.get("workers"))
        rows.append(row)
    text = render_table(headers, rows, empty="no queues")
    warnings = queue_warnings(queues)
    return "\n".join([text, "", *warnings]) if warnings else text


def queue_warnings(queues: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for queue in queues:
        name = cell(queue.get("name"))
        if queue.get("unserved") is True:
            pending = queue.get("pending")
            jobs = "job" if pending == 1 else "jobs"
            lines.append(
                f"warning: queue {name} has {cell(pending)} pending {jobs}"
                " and no live worker serving it"
            )
            continue  # with no worker at all, every type is unhandled: said once is enough
        unhandled = queue.get("unhandled_types")
        if isinstance(unhandled, list) and unhandled:
            types = ", ".join(cell(t) for t in unhandled)
            lines.append(f"warning: queue {name}: no live worker handles type {types}")
    return lines


def workers_table(workers: Sequence[Mapping[str, Any]]) -> str:
    headers: tuple[str, ...] = ("WORKER", "HOST", "PID", "QUEUES", "BUSY", "STARTED", "HEARTBEAT")
    with_handlers = any("handlers" in worker for worker in workers)
    if with_handlers:
        headers += ("HANDLERS",)
    rows = []
    for worker in workers:
        row = [
            worker.get("id"),
            worker.get("host"),
            worker.get("pid"),
            _names(worker.get("queues")),
            f"{cell(worker.get('slots_busy'))}/{cell(worker.get('slots_total'))}",
            timestamp(worker.get("started_at")),
            _ago(worker.get("heartbeat_age_s")),
        ]
        if with_handlers:
            row.append(_names(worker.get("handlers")))
        rows.append(row)
    return render_table(headers, rows, empty="no live workers")


def _names(value: Any) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else None
    return value


def top_frame(
    api_url: str, queues: Sequence[Mapping[str, Any]], workers: Sequence[Mapping[str, Any]]
) -> str:
    """One screen of `workstream top`: totals, then the queues and workers tables."""
    totals = {
        name: sum(q.get(name, 0) for q in queues if _is_number(q.get(name, 0)))
        for name in ("pending", "processing", "scheduled", "failed", "waiting")
    }
    if not totals["waiting"]:  # shown once jobs wait for their parents (depends_on)
        del totals["waiting"]
    busy = sum(w.get("slots_busy", 0) for w in workers if _is_number(w.get("slots_busy", 0)))
    slots = sum(w.get("slots_total", 0) for w in workers if _is_number(w.get("slots_total", 0)))
    summary = ", ".join(f"{count} {name}" for name, count in totals.items())
    return "\n".join(
        [
            f"{api_url}  {now_utc()}",
            f"jobs: {summary}",
            f"workers: {len(workers)} live, {busy}/{slots} slots busy",
            "",
            queues_table(queues),
            "",
            workers_table(workers),
        ]
    )


def _ago(seconds: Any) -> str:
    return f"{age(seconds)} ago" if _is_number(seconds) else cell(seconds)
