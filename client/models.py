"""The API's JSON shapes as frozen dataclasses. Every model keeps the whole answer in `raw`,
so fields the server adds later are never lost, and a field this client knows but an older
server does not send reads as None (or empty), never a KeyError.

Times are timezone-aware `datetime`s in UTC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 text (the API writes `...Z`) as an aware datetime; anything else as None."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class Attempt:
    """One run of a job (the `history` field), oldest first."""

    attempt: int
    worker: str | None
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str | None  # completed | failed | timed_out | lost
    error: str | None
    traceback: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(
            attempt=_int(data.get("attempt")),
            worker=_str(data.get("worker")),
            started_at=parse_time(data.get("started_at")),
            ended_at=parse_time(data.get("ended_at")),
            outcome=_str(data.get("outcome")),
            error=_str(data.get("error")),
            traceback=_str(data.get("traceback")),
        )


@dataclass(frozen=True)
class Job:
    id: str
    type: str
    queue: str
    status: str  # scheduled | pending | processing | completed | failed | cancelled | waiting
    payload: Any
    result: Any
    error: str | None
    attempts: int
    max_attempts: int
    timeout: float | None  # seconds
    worker: str | None
    idempotency_key: str | None
    created_at: datetime | None
    enqueued_at: datetime | None
    run_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    # Empty in listings and from servers that do not record it.
    history: tuple[Attempt, ...] = ()
    unique_key: str | None = None  # the unique option's key, given or derived
    expires_at: datetime | None = None  # not started by then: cancelled, error "expired"
    # What the handler last reported (any JSON; Python handlers send {"value", "message"});
    # None before any report.
    progress: Any = None
    cancel_requested: bool = False  # a processing job asked to stop; it ends cancelled
    depends_on: tuple[str, ...] = ()  # parents: it waits (status waiting) until they end
    on_parent_failure: str | None = None  # cancel | run, with depends_on
    # The first 100 jobs that depend on this one (only from get(), empty in listings) and
    # how many there are in all.
    children: tuple[str, ...] = ()
    children_count: int = 0
    priority: int = 0  # 0-9, higher first within its queue (0 from servers without it)
    callback_url: str | None = None  # its final record is POSTed there when it ends
    callback_job_id: str | None = None  # the http job delivering that callback, once owed
    callback_for: str | None = None  # a callback job: the job whose record it delivers
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job is completed, failed or cancelled (it will not change again
        unless someone retries it)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        history = data.get("history")
        attempts = history if isinstance(history, list) else []
        return cls(
            id=str(data.get("id", "")),
            type=str(data.get("type", "")),
            queue=str(data.get("queue", "")),
            status=str(data.get("status", "")),
            payload=data.get("payload"),
            result=data.get("result"),
            error=_str(data.get("error")),
            attempts=_int(data.get("attempts")),
            max_attempts=_int(data.get("max_attempts"), 1),
            timeout=_float(data.get("timeout")),
            worker=_str(data.get("worker")),
            idempotency_key=_str(data.get("idempotency_key")),
            created_at=parse_time(data.get("created_at")),
            enqueued_at=parse_time(data.get("enqueued_at")),
            run_at=parse_time(data.get("run_at")),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            history=tuple(Attempt.from_json(a) for a in attempts if isinstance(a, Mapping)),
            unique_key=_str(data.get("unique_key")),
            expires_at=parse_time(data.get("expires_at")),
            progress=data.get("progress"),
            cancel_requested=data.get("cancel_requested") is True,
            depends_on=_strings(data.get("depends_on")),
            on_parent_failure=_str(data.get("on_parent_failure")),
            children=_strings(data.get("children")),
            children_count=_int(data.get("children_count")),
            priority=_int(data.get("priority")),
            callback_url=_str(data.get("callback_url")),
            callback_job_id=_str(data.get("callback_job_id")),
            callback_for=_str(data.get("callback_for")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Submitted:
    """One entry of a batch answer: the job's id and status, and whether this request created
    it (False: its idempotency key was seen before)."""

    id: str
    status: str
    created: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Submitted:
        return cls(
            str(data.get("id", "")), str(data.get("status", "")), data.get("created") is True
        )


@dataclass(frozen=True)
class JobPage:
    """One page of a listing; pass `next_cursor` back to get the next (None: no more)."""

    jobs: tuple[Job, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Queue:
    name: str
    pending: int
    processing: int
    scheduled: int
    failed: int
    paused: bool
    # From servers that report them: live workers serving the queue, whether jobs wait with
    # no worker at all, and job types in it that no serving worker has a handler for.
    workers: int | None = None
    unserved: bool | None = None
    unhandled_types: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Queue:
        workers = data.get("workers")
        unserved = data.get("unserved")
        return cls(
            name=str(data.get("name", "")),
            pending=_int(data.get("pending")),
            processing=_int(data.get("processing")),
            scheduled=_int(data.get("scheduled")),
            failed=_int(data.get("failed")),
            paused=data.get("paused") is True,
            workers=_int(workers) if isinstance(workers, int) else None,
            unserved=unserved if isinstance(unserved, bool) else None,
            unhandled_types=_strings(data.get("unhandled_types")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Worker:
    id: str
    host: str | None
    pid: int | None
    queues: tuple[str, ...]
    slots_busy: int
    slots_total: int
    started_at: datetime | None
    last_heartbeat: datetime | None
    heartbeat_age_s: float | None
    handlers: tuple[str, ...] | None = None  # None: the server does not report handlers
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Worker:
        handlers = data.get("handlers")
        pid = data.get("pid")
        return cls(
            id=str(data.get("id", "")),
            host=_str(data.get("host")),
            pid=pid if isinstance(pid, int) else None,
            queues=_strings(data.get("queues")),
            slots_busy=_int(data.get("slots_busy")),
            slots_total=_int(data.get("slots_total")),
            started_at=parse_time(data.get("started_at")),
            last_heartbeat=parse_time(data.get("last_heartbeat")),
            heartbeat_age_s=_float(data.get("heartbeat_age_s")),
            handlers=_strings(handlers) if isinstance(handlers, list) else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class Health:
    """GET /health: `ok` is False when the API is up but Redis does not answer (503)."""

    ok: bool
    status: str
    redis: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Health:
        status = str(data.get("status", "unknown"))
        return cls(status == "ok", status, str(data.get("redis", "unknown")), dict(data))
