"""The job model: what a client submits (JobSpec), what a worker runs (ClaimedJob) and what
anyone reads back (Job)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from workstream.common.durations import parse_duration
from workstream.common.errors import ValidationError
from workstream.common.serialization import (
    MAX_NESTING,
    dumps,
    loads,
    ms_to_rfc3339,
    nests_too_deep,
    rfc3339_to_ms,
)
from workstream.common.ssrf import InvalidUrlError, parse_url
from workstream.common.states import JobStatus

TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
QUEUE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
JOB_ID_PATTERN = re.compile(r"(?:[a-z0-9_]{1,32}:)?[0-9a-f]{32}")  # <shard>: see common/shards.py
MAX_ATTEMPTS_LIMIT = 100
MAX_TIMEOUT_S = 7 * 86400.0
MAX_DELAY_S = 366 * 86400.0
# run_at is judged on this host's clock and scheduled on Redis's: a client aiming at the
# cap on a clock a little ahead must not be refused. The cap only keeps times bounded.
RUN_AT_SKEW_S = 300.0
SPEC_FIELDS = frozenset(
    {"type", "payload", "queue", "max_attempts", "timeout", "delay", "run_at", "idempotency_key"}
    | {"unique", "expires_at", "expires_in", "group"}
    | {"priority"}
    | {"id", "depends_on", "on_parent_failure"}
    | {"callback_url"}
)
# unique: while a job holding the key is live, another job with the key is refused (409
# duplicate_job). `until` says when the holder lets go: once it starts, once it finishes, or
# only when the ttl runs out; the ttl bounds every lock (Redis expires it).
UNIQUE_FIELDS = frozenset({"key", "ttl", "until"})
UNIQUE_UNTIL = ("finished", "started", "ttl")
DEFAULT_UNIQUE_TTL_S = 3600.0
MAX_UNIQUE_TTL_S = MAX_DELAY_S
_EMPTY_PAYLOAD = "{}"
# A client's own job id: the idempotency key's characters (TYPE_PATTERN); unique within the
# namespace while its record exists (a second submit: a replay, or 409 id_conflict).
CLIENT_ID_PATTERN = TYPE_PATTERN
# depends_on: at most MAX_DEPENDS_ON parents a job (ids of jobs, or of jobs in the same
# submission); a parent shows its first MAX_CHILDREN_SHOWN children (and counts them all).
MAX_DEPENDS_ON = 100
MAX_CHILDREN_SHOWN = 100
# A job's children (jobs naming it in depends_on), ever: the script that ends it settles each,
# so this bounds its work (a submission past it: 400 too_many_dependents, nothing written).
MAX_DEPENDENTS = 10_000
ON_PARENT_FAILURE = ("cancel", "run")
# The error of a job cancelled because a parent failed or was cancelled: "parent_failed: <id>".
PARENT_FAILED = "parent_failed"
# priority: 0 (the default) to PRIORITY_MAX, higher first within a queue, FIFO within a level.
PRIORITY_MAX = 9
# callback_url: when the job ends, an `http` job POSTs its final record there (_callbacks.lua);
# checked by the outbound guard (common/ssrf.py) at submission and again at delivery.


def new_job_id() -> str:
    return os.urandom(16).hex()


def is_job_id(text: str) -> bool:
    return JOB_ID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class Unique:
    """A resolved `unique` option: key given, or derived from type + queue + payload."""

    key: str
    ttl_ms: int
    until: str


@dataclass(frozen=True)
class JobSpec:
    """A validated submission whose payload is already encoded, so that anything that holds a
    JobSpec can store it: a bad value fails while its own request is judged, never inside a
    Redis call shared with other requests. None means "use the configured default"."""

    type: str
    payload: Any = None
    queue: str = "default"
    max_attempts: int | None = None
    timeout: float | None = None
    delay: float | None = None
    run_at_ms: int | None = None
    idempotency_key: str | None = None
    unique: Unique | None = None
    expires_in: float | None = None  # seconds after submission (Redis time), or
    expires_at_ms: int | None = None  # an absolute time: not started by then -> cancelled
    # A queue's group_concurrency caps the jobs of one group processing at once (limits.py).
    group: str | None = None
    # 0 (the default) to PRIORITY_MAX: higher levels are claimed first, FIFO within one.
    priority: int = 0
    # The client's own id (CLIENT_ID_PATTERN); None: the store makes one.
    id: str | None = None
    # Parents: the job waits (status waiting) until each has ended (common/scripts/_deps.lua).
    depends_on: tuple[str, ...] | None = None
    on_parent_failure: str = "cancel"  # cancel | run: what a failed or cancelled parent does
    # Where the job's final record is POSTed when it ends (see callback_url above).
    callback_url: str | None = None
    _payload_json: str = field(default=_EMPTY_PAYLOAD, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name("type", self.type, TYPE_PATTERN)
        _check_name("queue", self.queue, QUEUE_PATTERN)
        if self.idempotency_key is not None:
            _check_name("idempotency_key", self.idempotency_key, TYPE_PATTERN)
        _optional_int("max_attempts", self.max_attempts, 1, MAX_ATTEMPTS_LIMIT)
        _optional_number("timeout", self.timeout, 0.001, MAX_TIMEOUT_S)
        _optional_number("delay", self.delay, 0, MAX_DELAY_S)
        if self.run_at_ms is not None:
            _optional_int("run_at_ms", self.run_at_ms, 0, _run_at_cap_ms())
        _one_timing(self.delay, self.run_at_ms)
        _optional_number("expires_in", self.expires_in, 0.001, MAX_DELAY_S)
        _check_expiry(self.delay, self.run_at_ms, self.expires_in, self.expires_at_ms)
        if self.group is not None:
            _check_name("group", self.group, QUEUE_PATTERN)
        _optional_int("priority", self.priority, 0, PRIORITY_MAX)
        _check_workflow(self)
        if self.callback_url is not None:
            _callback_url(self.callback_url)
        object.__setattr__(self, "_payload_json", _encode_payload(self.payload))

    @classmethod
    def from_mapping(cls, data: Any) -> JobSpec:
        """Builds a spec from decoded JSON; unknown fields, wrong types and values the store
        cannot hold name the field."""
        if type(data) is not dict and not isinstance(data, Mapping):  # the ABC check is slow
            raise ValidationError("body", "expected a JSON object")
        if not SPEC_FIELDS.issuperset(data):  # the common case costs no set or sort
            raise ValidationError(sorted(set(data) - SPEC_FIELDS)[0], "unknown field")
        if "type" not in data:
            raise ValidationError("type", "required")
        # Filled in place: the frozen dataclass __init__ costs 1 us a job, and a batch holds
        # 1,000. The checks are __post_init__'s, each value judged once.
        spec = object.__new__(cls)
        fields = spec.__dict__
        fields["type"] = _check_name("type", data["type"], TYPE_PATTERN)
        fields["queue"] = _check_name("queue", data.get("queue", "default"), QUEUE_PATTERN)
        fields["max_attempts"] = _optional_int(
            "max_attempts", data.get("max_attempts"), 1, MAX_ATTEMPTS_LIMIT
        )
        fields["timeout"] = _optional_number("timeout", data.get("timeout"), 0.001, MAX_TIMEOUT_S)
        fields["delay"] = delay = _optional_number("delay", data.get("delay"), 0, MAX_DELAY_S)
        fields["run_at_ms"] = run_at_ms = _run_at_ms(data.get("run_at"))
        idempotency_key = data.get("idempotency_key")
        if idempotency_key is not None:
            _check_name("idempotency_key", idempotency_key, TYPE_PATTERN)
        fields["idempotency_key"] = idempotency_key
        _one_timing(delay, run_at_ms)
        fields["payload"] = payload = data.get("payload")
        fields["_payload_json"] = _encode_payload(payload)
        fields["unique"] = fields["expires_in"] = fields["expires_at_ms"] = fields["group"] = None
        fields["priority"] = 0
        if "priority" in data:
            fields["priority"] = _optional_int("priority", data["priority"], 0, PRIORITY_MAX) or 0
        if "unique" in data or "expires_at" in data or "expires_in" in data or "group" in data:
            spec._read_options(data)  # the hot path
        fields["id"] = fields["depends_on"] = None
        fields["on_parent_failure"] = "cancel"
        if "id" in data or "depends_on" in data or "on_parent_failure" in data:
            fields["id"] = data.get("id")
            parents = data.get("depends_on")
            if parents is not None and not isinstance(parents, list):
                raise ValidationError("depends_on", "expected an array of job ids")
            fields["depends_on"] = None if parents is None else tuple(parents)
            fields["on_parent_failure"] = data.get("on_parent_failure", "cancel")
            _check_workflow(spec)
        fields["callback_url"] = None
        if "callback_url" in data and data["callback_url"] is not None:
            fields["callback_url"] = _callback_url(data["callback_url"])
        return spec

    def _read_options(self, data: Mapping[str, Any]) -> None:
        fields = self.__dict__
        if data.get("unique") is not None:
            fields["unique"] = _unique(data["unique"], self.type, self.queue, self.payload)
        fields["expires_in"] = expires_in = _optional_duration(
            "expires_in", data.get("expires_in"), MAX_DELAY_S
        )
        fields["expires_at_ms"] = expires_at_ms = _expires_at_ms(data.get("expires_at"))
        _check_expiry(self.delay, self.run_at_ms, expires_in, expires_at_ms)
        if data.get("group") is not None:
            fields["group"] = _check_name("group", data["group"], QUEUE_PATTERN)

    def fingerprint(self) -> str:
        """A hash of the canonical request (every field but the idempotency key, the payload
        with sorted keys), stored with an idempotency key: the key reused for another request
        is a conflict (draft-ietf-httpapi-idempotency-key-header), the same request a replay."""
        unique = self.unique
        canonical = [
            self.type,
            self.queue,
            self.payload,
            self.max_attempts,
            self.timeout,
            self.delay,
            self.run_at_ms,
            None if unique is None else [unique.key, unique.ttl_ms, unique.until],
            self.expires_in,
            self.expires_at_ms,
            *([] if self.group is None else [self.group]),  # fingerprints without one unchanged
            *([] if not self.priority else [["priority", self.priority]]),  # the same
            *(
                []
                if self.depends_on is None
                else [["depends_on", list(self.depends_on), self.on_parent_failure]]
            ),
            *([] if self.callback_url is None else [["callback_url", self.callback_url]]),
        ]
        return hashlib.blake2b(_canonical_json(canonical), digest_size=16).hexdigest()

    def payload_json(self) -> str:
        """The payload as stored: encoded once, when the spec was made."""
        return self._payload_json


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
    namespace: str = ""  # the job's key namespace: ctx.cancelled and ctx.progress() read it

    @classmethod
    def from_reply(cls, fields: list[Any], namespace: str = "") -> ClaimedJob:
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
            namespace=namespace,
        )


CLAIM_FIELDS = 10

_TIMESTAMPS = ("created_at", "enqueued_at", "run_at", "started_at", "finished_at")

# Attempt history, kept in the job hash's `history` field (JSON written by the scripts that end
# an attempt: fail, reclaim, recover). A completed attempt is not written there: complete
# already leaves its worker, started_at, finished_at and attempts in the hash, so the entry is
# rendered from those, costing the hot path nothing. Bounds (rendered into the Lua preamble):
HISTORY_MAX_ENTRIES = 25
MAX_TRACEBACK_CHARS = 8000
# The stored history's size (its JSON) per job: past it the oldest entries lose their traceback,
# then the oldest entries go. The newest entry is always kept whole (its error at most 4,000
# characters and its traceback 8,000), so one entry can be all a history holds.
HISTORY_MAX_BYTES = 16384
OUTCOMES = ("completed", "failed", "timed_out", "lost", "cancelled")
# The worker's error text for its own timeout (the attempt is recorded as timed_out because the
# worker says so, Outcome.timed_out, never because of the text).
TIMED_OUT_PREFIX = "timed out after "
# A running job's cancel: POST /jobs/{id}/cancel sets the hash field `cancel_requested` to "1";
# the run then ends cancelled (complete.lua, fail.lua), with this error when the handler stopped.
CANCELLED_ERROR = "cancelled while running"
# The error of a job cancelled because its expires_at passed before it started (_claim.lua
# at claim time, expire.lua for jobs no worker reached).
EXPIRED_ERROR = "expired"
# The largest `progress` (its JSON) a job keeps: ctx.progress() and the lease `extend` store it.
MAX_PROGRESS_BYTES = 4096
# Internal hash field, never shown: `progress_event_at`, when progress.lua last appended a
# `progress` event for the job (at most one per common.events.PROGRESS_EVENT_MS).
# Every field of the hash but the history: what listings read (they omit the history).
LISTED_FIELDS = (
    "id", "type", "queue", "status", "payload", "result", "error", "attempts", "max_attempts",
    "timeout_ms", *_TIMESTAMPS, "worker", "idempotency_key", "progress", "cancel_requested",
    "unique_key", "expires_at", "group", "priority",
    "depends_on", "on_parent_failure", "parents_left", "children_count",
    "callback_url", "callback_job_id", "callback_for",
    "batch",
)  # fmt: skip


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
    # Oldest first; None when not read (listings), then to_json leaves it out.
    history: list[dict[str, Any]] | None = None
    progress: Any = None  # the last ctx.progress() or extend progress, JSON
    cancel_requested: bool = False  # processing, and asked to stop
    unique_key: str | None = None  # the `unique` option's key, given or derived
    expires_at: int | None = None  # not started by then: cancelled, error "expired"
    group: str | None = None  # capped by its queue's group_concurrency
    priority: int = 0  # 0-9, higher first within its queue
    callback_url: str | None = None  # POSTed the final record when the job ends
    callback_job_id: str | None = None  # the http job delivering it (set when the job ended)
    callback_for: str | None = None  # a callback job: the job whose record it delivers
    depends_on: list[str] | None = None  # parents (None: none)
    on_parent_failure: str | None = None  # cancel | run, with depends_on
    parents_left: int | None = None  # while waiting: parents not yet ended
    # The first MAX_CHILDREN_SHOWN jobs that named this one in depends_on; None when not read
    # (listings), then to_json leaves it out. children_count counts them all.
    children: list[str] | None = None
    children_count: int = 0
    batch: str | None = None  # the batch it is a member of (common/batches.py)

    @classmethod
    def from_hash(cls, data: Mapping[str, str], *, with_history: bool = True) -> Job:
        """A job as stored. Whatever older code or a hand edit left in a number or a JSON
        field reads as a default or as its text, so one odd record never breaks a listing."""
        status = JobStatus(data["status"])
        return cls(
            id=data["id"],
            type=data["type"],
            queue=data["queue"],
            status=status,
            payload=_stored_json(data.get("payload")),
            result=_stored_json(data.get("result")),
            error=data.get("error") or None,
            attempts=_stored_int(data.get("attempts")) or 0,
            max_attempts=_stored_int(data.get("max_attempts")) or 1,
            timeout_ms=_stored_int(data.get("timeout_ms")) or 0,
            created_at=_stored_int(data.get("created_at")),
            enqueued_at=_stored_int(data.get("enqueued_at")),
            run_at=_stored_int(data.get("run_at")),
            started_at=_stored_int(data.get("started_at")),
            finished_at=_stored_int(data.get("finished_at")),
            worker=data.get("worker") or None,
            idempotency_key=data.get("idempotency_key") or None,
            history=_history(data, status) if with_history else None,
            progress=_stored_json(data.get("progress")),
            # The flag outlives the run in the hash (it expires with it); it means "asked to
            # stop" only while the job runs.
            cancel_requested=status is JobStatus.PROCESSING and data.get("cancel_requested") == "1",
            unique_key=data.get("unique_key") or None,
            expires_at=_stored_int(data.get("expires_at")),
            group=data.get("group") or None,
            priority=_stored_int(data.get("priority")) or 0,
            callback_url=data.get("callback_url") or None,
            callback_job_id=data.get("callback_job_id") or None,
            callback_for=data.get("callback_for") or None,
            depends_on=_stored_ids(data.get("depends_on")),
            on_parent_failure=data.get("on_parent_failure") or None,
            parents_left=(
                _stored_int(data.get("parents_left")) if status is JobStatus.WAITING else None
            ),
            children=(_stored_ids(data.get("children")) or []) if with_history else None,
            children_count=_stored_int(data.get("children_count")) or 0,
            batch=data.get("batch") or None,
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
            "progress": self.progress,
            "cancel_requested": self.cancel_requested,
            "unique_key": self.unique_key,
            "expires_at": ms_to_rfc3339(self.expires_at),
            "group": self.group,
            "priority": self.priority,
            "callback_url": self.callback_url,
            "callback_job_id": self.callback_job_id,
            "callback_for": self.callback_for,
            "depends_on": self.depends_on,
            "on_parent_failure": self.on_parent_failure,
            "parents_left": self.parents_left,
            "children_count": self.children_count,
            "batch": self.batch,
        }
        for name in _TIMESTAMPS:
            body[name] = ms_to_rfc3339(getattr(self, name))
        if self.history is not None:
            body["history"] = self.history
        if self.children is not None:
            body["children"] = self.children
        return body


def _history(data: Mapping[str, str], status: JobStatus) -> list[dict[str, Any]]:
    """The stored entries, oldest first, then the completed attempt rendered from the hash."""
    entries = _stored_history(data.get("history"))
    if status is JobStatus.COMPLETED:
        entries.append(
            {
                "attempt": data.get("attempts"),
                "worker": data.get("worker"),
                "started_at": data.get("started_at"),
                "ended_at": data.get("finished_at"),
                "outcome": "completed",
            }
        )
    return [_entry_json(entry) for entry in entries[-HISTORY_MAX_ENTRIES:]]


def _stored_history(text: str | None) -> list[dict[str, Any]]:
    """The stored entries; anything else (a hand edit) reads as no history."""
    if not text:
        return []
    try:
        entries = loads(text)
    except (ValueError, RecursionError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One attempt as the API shows it: every field present, times in RFC 3339; whatever a hand
    edit left reads as a default, as for the job's own fields."""

    def text(name: str) -> str | None:
        value = entry.get(name)
        return value if isinstance(value, str) and value else None

    def number(name: str) -> int | None:
        value = entry.get(name)
        return _stored_int(str(value)) if isinstance(value, (int, float, str)) else None

    outcome = text("outcome")
    return {
        "attempt": number("attempt") or 0,
        "worker": text("worker") or "",
        "started_at": ms_to_rfc3339(number("started_at")),
        "ended_at": ms_to_rfc3339(number("ended_at")),
        "outcome": outcome if outcome in OUTCOMES else "lost",
        "error": text("error"),
        "traceback": text("traceback"),
    }


def stored_json(text: str | None) -> Any:
    """A stored payload or result as the API answers it (see _stored_json)."""
    return _stored_json(text)


def _stored_ids(text: str | None) -> list[str] | None:
    """A stored JSON array of job ids (depends_on, children); anything else reads as None."""
    value = _stored_json(text)
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, str)]


def _stored_int(text: str | None) -> int | None:
    """Scripts write integers; Lua may spell a large one as a float ("1e+20")."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) else None


def _stored_json(text: str | None) -> Any:
    """A stored payload or result; text that is not JSON, or nests deeper than the encoder
    writes today (older code stored such), is answered as the text itself."""
    if not text:
        return None
    try:
        if text.count("[") + text.count("{") > MAX_NESTING and nests_too_deep(text.encode()):
            return text
        return loads(text)
    except (ValueError, RecursionError):
        return text


def _run_at_cap_ms() -> int:
    return round((time.time() + MAX_DELAY_S + RUN_AT_SKEW_S) * 1000)


def _run_at_ms(value: Any) -> int | None:
    """run_at as ms since the epoch: at most MAX_DELAY_S ahead (as delay), and a time in the
    past means now (0, so that no negative time reaches the script's -1 "none")."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("run_at", "expected an RFC 3339 timestamp string")
    try:
        ms = rfc3339_to_ms(value)
    except (ValueError, OverflowError) as ex:
        raise ValidationError("run_at", f"expected an RFC 3339 timestamp: {ex}") from None
    if ms > _run_at_cap_ms():
        raise ValidationError("run_at", f"expected a time at most {_days(MAX_DELAY_S)} from now")
    return max(ms, 0)


def _canonical_json(value: Any) -> bytes:
    """JSON with sorted keys, the same bytes for the same value: orjson (a keyed batch of 1,000
    would spend ~10 ms in the standard encoder), the standard encoder where orjson declines
    (integers beyond 64 bits, a lone surrogate)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError included
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def _unique(value: Any, job_type: str, queue: str, payload: Any) -> Unique:
    """`{"key", "ttl", "until"}`, every part optional: without a key the job is unique by a
    hash of its type, queue and payload."""
    if not isinstance(value, Mapping):
        raise ValidationError("unique", 'expected an object such as {"key": "k", "ttl": "10m"}')
    unknown = sorted(set(value) - UNIQUE_FIELDS)
    if unknown:
        raise ValidationError(f"unique.{unknown[0]}", "unknown field")
    key = value.get("key")
    if key is None:
        key = "sha256:" + hashlib.sha256(_canonical_json([job_type, queue, payload])).hexdigest()
    else:
        _check_name("unique.key", key, TYPE_PATTERN)
    ttl = _optional_duration("unique.ttl", value.get("ttl"), MAX_UNIQUE_TTL_S)
    until = value.get("until", "finished")
    if until not in UNIQUE_UNTIL:
        raise ValidationError("unique.until", f"expected one of {', '.join(UNIQUE_UNTIL)}")
    return Unique(key, round((ttl or DEFAULT_UNIQUE_TTL_S) * 1000), until)


def _optional_duration(field: str, value: Any, high: float) -> float | None:
    """Seconds as a number, or a duration string ("10m", "500ms")."""
    if isinstance(value, str):
        try:
            value = parse_duration(value).total_seconds()
        except ValueError as ex:
            raise ValidationError(field, str(ex)) from None
    return _optional_number(field, value, 0.001, high)


def _expires_at_ms(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("expires_at", "expected an RFC 3339 timestamp string")
    try:
        ms = rfc3339_to_ms(value)
    except (ValueError, OverflowError) as ex:
        raise ValidationError("expires_at", f"expected an RFC 3339 timestamp: {ex}") from None
    if ms > _run_at_cap_ms():
        raise ValidationError("expires_at", f"expected a time at most {_days(MAX_DELAY_S)} ahead")
    return ms


def _check_expiry(
    delay: float | None, run_at_ms: int | None, expires_in: float | None, expires_at_ms: int | None
) -> None:
    """A job that could never start is refused rather than accepted and cancelled."""
    if expires_in is not None and expires_at_ms is not None:
        raise ValidationError("expires_at", "give either expires_at or expires_in, not both")
    if expires_at_ms is not None:
        if expires_at_ms <= time.time() * 1000:
            raise ValidationError("expires_at", "expected a time in the future")
        due = run_at_ms if delay is None else time.time() * 1000 + delay * 1000
        if due is not None and expires_at_ms <= due:
            raise ValidationError("expires_at", "expected a time after the job is due")
    if expires_in is not None:
        if delay is not None and expires_in <= delay:
            raise ValidationError("expires_in", "expected more than delay")
        if run_at_ms is not None and time.time() * 1000 + expires_in * 1000 <= run_at_ms:
            raise ValidationError("expires_in", "expected a time after the job is due")


def _callback_url(value: Any) -> str:
    """A callback_url the outbound guard can parse (whether its address may be reached is
    judged with HTTP_JOB_ALLOWED_NETWORKS: by the API at submission, by the worker at delivery)."""
    try:
        parse_url(value, "callback_url")
    except InvalidUrlError as ex:
        raise ValidationError("callback_url", ex.message) from None
    return str(value)


def _check_workflow(spec: JobSpec) -> None:
    """id, depends_on and on_parent_failure (common/scripts/_deps.lua)."""
    if spec.id is not None:
        _check_name("id", spec.id, CLIENT_ID_PATTERN)
    parents = spec.depends_on
    if parents is None:
        if spec.on_parent_failure != "cancel":
            raise ValidationError("on_parent_failure", "only with depends_on")
        return
    if not 1 <= len(parents) <= MAX_DEPENDS_ON:
        raise ValidationError("depends_on", f"expected 1 to {MAX_DEPENDS_ON} job ids")
    for parent in parents:
        _check_name("depends_on", parent, CLIENT_ID_PATTERN)
    if len(set(parents)) != len(parents):
        raise ValidationError("depends_on", "names a job more than once")
    if spec.on_parent_failure not in ON_PARENT_FAILURE:
        choices = ", ".join(ON_PARENT_FAILURE)
        raise ValidationError("on_parent_failure", f"expected one of {choices}")
    if spec.delay is not None or spec.run_at_ms is not None:
        raise ValidationError("depends_on", "cannot be combined with delay or run_at")


def _one_timing(delay: float | None, run_at_ms: int | None) -> None:
    if delay is not None and run_at_ms is not None:
        raise ValidationError("run_at", "give either delay or run_at, not both")


def _encode_payload(payload: Any) -> str:
    if payload is None:
        return _EMPTY_PAYLOAD
    try:
        return dumps(payload)
    except (TypeError, ValueError) as ex:
        raise ValidationError("payload", f"cannot be stored as JSON: {ex}") from None


def _check_name(field: str, value: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(field, f"expected {pattern.pattern}")
    return value


def _optional_int(field: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(field, f"expected an integer from {low} to {high}")
    return value


def _optional_number(field: str, value: Any, low: float, high: float) -> float | None:
    """The range is checked before float(): an int compares exactly, so 10**400 is out of
    range rather than an OverflowError; nan fails every comparison."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError(field, f"expected a number from {low:g} to {high:.0f}")
    return float(value)


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days"
