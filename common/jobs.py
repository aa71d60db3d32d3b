"""The job model: what a client submits (JobSpec), what a worker runs (ClaimedJob) and what
anyone reads back (Job)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workstream.common.errors import ValidationError
from workstream.common.serialization import dumps, loads, ms_to_rfc3339, rfc3339_to_ms
from workstream.common.states import JobStatus

TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
QUEUE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
MAX_ATTEMPTS_LIMIT = 100
MAX_TIMEOUT_S = 7 * 86400.0
MAX_DELAY_S = 366 * 86400.0
SPEC_FIELDS = frozenset(
    {"type", "payload", "queue", "max_attempts", "timeout", "delay", "run_at", "idempotency_key"}
)


def new_job_id() -> str:
    return os.urandom(16).hex()


def is_job_id(text: str) -> bool:
    return JOB_ID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class JobSpec:
    """A validated submission. None means "use the configured default"."""

    type: str
    payload: Any = None
    queue: str = "default"
    max_attempts: int | None = None
    timeout: float | None = None
    delay: float | None = None
    run_at_ms: int | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_mapping(cls, data: Any) -> JobSpec:
        """Builds a spec from decoded JSON; unknown fields and wrong types name the field."""
        if type(data) is not dict and not isinstance(data, Mapping):  # the ABC check is slow
            raise ValidationError("body", "expected a JSON object")
        if not SPEC_FIELDS.issuperset(data):  # the common case costs no set or sort
            raise ValidationError(sorted(set(data) - SPEC_FIELDS)[0], "unknown field")
        if "type" not in data:
            raise ValidationError("type", "required")
        run_at = data.get("run_at")
        run_at_ms = None
        if run_at is not None:
            if not isinstance(run_at, str):
                raise ValidationError("run_at", "expected an RFC 3339 timestamp string")
            try:
                run_at_ms = rfc3339_to_ms(run_at)
            except ValueError as ex:
                raise ValidationError("run_at", f"expected an RFC 3339 timestamp: {ex}") from None
        # Filled in place: the frozen dataclass __init__ costs 1 us a job, and a batch holds
        # 1,000. The same checks as __post_init__ run on the filled fields.
        spec = object.__new__(cls)
        fields = spec.__dict__
        fields["type"] = _require_str("type", data["type"])
        fields["payload"] = data.get("payload")
        fields["queue"] = _require_str("queue", data.get("queue", "default"))
        fields["max_attempts"] = _optional_int("max_attempts", data.get("max_attempts"))
        fields["timeout"] = _optional_number("timeout", data.get("timeout"))
        fields["delay"] = _optional_number("delay", data.get("delay"))
        fields["run_at_ms"] = run_at_ms
        fields["idempotency_key"] = _optional_str("idempotency_key", data.get("idempotency_key"))
        _validate(spec)
        return spec

    def payload_json(self) -> str:
        try:
            return dumps(self.payload if self.payload is not None else {})
        except (TypeError, ValueError) as ex:
            raise ValidationError("payload", f"not JSON-serialisable: {ex}") from None


@dataclass(frozen=True)
class EnqueueResult:
    job_id: str
    status: JobStatus
    created: bool
    created_at: int  # Redis server time of the call, ms


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run one attempt; lease is the fencing token of this attempt."""

    id: str
    type: str
    queue: str
    payload_json: str
    attempt: int
    max_attempts: int
    timeout_ms: int
    lease: str
    created_at: int
    alone: bool = False  # a suspect job: nothing else may run beside it in this worker

    @classmethod
    def from_reply(cls, fields: list[Any]) -> ClaimedJob:
        return cls(
            id=str(fields[0]),
            type=str(fields[1]),
            queue=str(fields[2]),
            payload_json=str(fields[3]),
            attempt=int(fields[4]),
            max_attempts=int(fields[5]),
            timeout_ms=int(fields[6]),
            lease=str(fields[7]),
            created_at=int(fields[8]),
            alone=int(fields[9]) == 1,
        )


CLAIM_FIELDS = 10

_TIMESTAMPS = ("created_at", "enqueued_at", "run_at", "started_at", "finished_at")


@dataclass(frozen=True)
class Job:
    id: str
    type: str
    queue: str
    status: JobStatus
    payload: Any
    result: Any
    error: str | None
    attempts: int
    max_attempts: int
    timeout_ms: int
    created_at: int | None
    enqueued_at: int | None
    run_at: int | None
    started_at: int | None
    finished_at: int | None
    worker: str | None
    idempotency_key: str | None

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> Job:
        def ms(name: str) -> int | None:
            value = data.get(name)
            return int(value) if value else None

        result = data.get("result")
        return cls(
            id=data["id"],
            type=data["type"],
            queue=data["queue"],
            status=JobStatus(data["status"]),
            payload=loads(data["payload"]) if data.get("payload") else None,
            result=loads(result) if result else None,
            error=data.get("error") or None,
            attempts=int(data.get("attempts") or 0),
            max_attempts=int(data.get("max_attempts") or 1),
            timeout_ms=int(data.get("timeout_ms") or 0),
            created_at=ms("created_at"),
            enqueued_at=ms("enqueued_at"),
            run_at=ms("run_at"),
            started_at=ms("started_at"),
            finished_at=ms("finished_at"),
            worker=data.get("worker") or None,
            idempotency_key=data.get("idempotency_key") or None,
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "queue": self.queue,
            "status": self.status.value,
            "payload": self.payload,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout_ms / 1000,
            "worker": self.worker,
            "idempotency_key": self.idempotency_key,
        }
        for name in _TIMESTAMPS:
            body[name] = ms_to_rfc3339(getattr(self, name))
        return body


def _validate(spec: JobSpec) -> None:
    _check_name("type", spec.type, TYPE_PATTERN, "[A-Za-z0-9_.:-]{1,128}")
    _check_name("queue", spec.queue, QUEUE_PATTERN, "[A-Za-z0-9_.-]{1,64}")
    if spec.idempotency_key is not None:
        _check_name("idempotency_key", spec.idempotency_key, TYPE_PATTERN, "[A-Za-z0-9_.:-]{1,128}")
    if spec.max_attempts is not None:
        _check_int("max_attempts", spec.max_attempts, 1, MAX_ATTEMPTS_LIMIT)
    if spec.timeout is not None:
        _check_number("timeout", spec.timeout, 0.001, MAX_TIMEOUT_S)
    if spec.delay is not None:
        _check_number("delay", spec.delay, 0, MAX_DELAY_S)
    if spec.delay is not None and spec.run_at_ms is not None:
        raise ValidationError("run_at", "give either delay or run_at, not both")


def _check_name(field: str, value: str, pattern: re.Pattern[str], spelled: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(field, f"expected {spelled}")


def _check_int(field: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(field, f"expected an integer from {low} to {high}")


def _check_number(field: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError(field, f"expected a number from {low:g} to {high:g}")


def _require_str(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "expected a string")
    return value


def _optional_str(field: str, value: Any) -> str | None:
    return None if value is None else _require_str(field, value)


def _optional_int(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, "expected an integer")
    return value


def _optional_number(field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, "expected a number")
    return float(value)
