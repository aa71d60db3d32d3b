"""The live event stream: one entry per job transition, appended by the Lua script that makes
the transition (common/scripts/_events.lua) to a capped Redis stream, read here.

Event ids. An event's id is its position, the form a client sends back (SSE Last-Event-ID,
`since`, `workstream events --since`) to resume after it. Today a namespace has one stream and
an id is that stream's entry id, `<ms>-<seq>`. On the Cluster layout (issue 17) each shard
keeps its own stream (QUEUE_SHARDS, common/shards.py) and GET /events merges them: a merged id
is a comma-separated list of positions, one per shard, the default shard's first and bare
(`<ms>-<seq>`), each named shard's as `<shard>=<ms>-<seq>` in shard name order, e.g.
`1733245200000-0,a=1733245199990-3,b=1733245200001-0`. A bare `<ms>-<seq>` keeps meaning the
position in the default shard, so ids issued without shards stay valid and, without
QUEUE_SHARDS, every id is exactly the stream id. A shard an id does not name resumes from the
earliest position the id gives (taken as a time: its entries after that one). A position may
also be a time `<ms>` (from that time on, inclusive; `0`: the oldest entry kept), for one shard
or, bare and alone, for every shard. parse_positions is the one place that reads ids; it refuses
anything else (400 malformed_event_id), so no client depends on another form; a shard this API
does not know is 400 unknown_event_shard.

The cap. EVENTS_MAX is kept in Redis (keys.events_max) and read by the scripts, never passed
per call: processes started with different settings cannot trim to different lengths, since
they share one value; configure() writes this process's setting at start and logs
events.max_changed (warning) when it replaces another value, so a disagreement is visible in
the logs of the process that changed it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from workstream.common.keys import Keys

log = logging.getLogger(__name__)

EVENTS_MAX_DEFAULT = 100_000
# Longest `detail` (an error, a progress report) an entry keeps, in bytes.
EVENT_DETAIL_MAX = 200
# At most one `progress` event per job this often (ms): the job hash keeps every report (and
# `progress_event_at`, when its last event was written), the capped stream is not flooded.
PROGRESS_EVENT_MS = 1000
# Names the scripts write (the `ev` field), for documentation, filters and tests.
EVENT_NAMES: tuple[str, ...] = (
    "created",  # enqueue, a schedule firing, a callback owed: pending, scheduled or waiting
    "started",  # claim, lease, start: processing
    "progress",  # a running job reported progress (detail: the report, cut)
    "completed",
    "retrying",  # an attempt failed, attempts left: pending or scheduled (detail: the error)
    "failed",  # failed for good (detail: the error)
    "cancel_requested",  # a running job was asked to stop
    "cancelled",  # cancelled (pending, scheduled, waiting, or a run asked to stop that ended;
    # detail parent_failed: a parent failed or was cancelled)
    "expired",  # not started by its expires_at: cancelled
    "promoted",  # a delayed or backed-off job became due: pending
    "retried",  # an operator retried a failed job: pending
    "recovered",  # its worker died: pending again, failed or cancelled
    "reclaimed",  # ran past its deadline or lease: pending, scheduled, failed or cancelled
    "released",  # given back by a worker shutting down: pending
    "ready",  # every parent ended (depends_on): waiting -> pending (_deps.lua)
    "revived",  # an operator retried a failed parent: cancelled (parent_failed) -> waiting
    "deleted",
    "batch_settled",  # a batch's last member ended (or it was sealed after): `job` is the batch
    # id, `type` "batch", detail its counts; its callbacks follow as "created" (_batches.lua)
)
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

# ASCII digits only: \d would take other scripts' digits, which int() reads as numbers.
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MS = re.compile(r"[0-9]{1,20}")
_SEQ_MAX = 2**64 - 1


class MalformedEventId(ValueError):
    """An event id that is not a position this version issues."""


def parse_position(text: str) -> str:
    """The stream id to read after: `<ms>-<seq>` as given; `<ms>` alone means from that time
    on (inclusive); `0` from the oldest entry kept. Raises MalformedEventId otherwise."""
    value = text.strip()
    match = _STREAM_ID.fullmatch(value)
    if match:
        ms, seq = int(match.group(1)), int(match.group(2))
        if ms > _SEQ_MAX or seq > _SEQ_MAX:
            raise MalformedEventId(text)
        return f"{ms}-{seq}"
    if _MS.fullmatch(value):
        ms = int(value)
        if ms > _SEQ_MAX:
            raise MalformedEventId(text)
        return "0-0" if ms == 0 else f"{ms - 1}-{_SEQ_MAX}"
    raise MalformedEventId(text)


# A shard's name in a merged id (common/settings.py QUEUE_SHARDS: [a-z0-9_]{1,32}).
_SHARD = re.compile(r"[a-z0-9_]{1,32}")


def parse_positions(text: str) -> dict[str, str]:
    """Every shard's stream id to read after, from an event id (see the module docstring):
    {shard: `<ms>-<seq>`}, '' the default shard, in the order given. Raises MalformedEventId
    for anything but positions of distinct shards joined by commas."""
    value = text.strip()
    if "," not in value and "=" not in value:
        return {"": parse_position(value)}
    found: dict[str, str] = {}
    for part in value.split(","):
        name, eq, position = part.partition("=")
        if not eq:
            name, position = "", part
        elif not _SHARD.fullmatch(name):
            raise MalformedEventId(text)
        if name in found or position != position.strip():
            raise MalformedEventId(text)
        found[name] = parse_position(position)
    return found


def format_positions(positions: Mapping[str, str]) -> str:
    """The event id of positions {shard: stream id}, in the mapping's order: the default
    shard's bare, the others `<shard>=<ms>-<seq>`; comma-separated."""
    return ",".join(pos if not shard else f"{shard}={pos}" for shard, pos in positions.items())


def id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Event:
    id: str
    event: str
    job: str
    status: str
    queue: str
    type: str
    attempt: int
    worker: str
    detail: str

    @property
    def at(self) -> int:
        """Redis server time (ms) of the transition: the id's time part."""
        return id_key(self.id)[0]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "event": self.event,
            "job_id": self.job,
            "status": self.status,
            "queue": self.queue,
            "type": self.type,
            "attempt": self.attempt,
            "at": self.at,
        }
        if self.worker:
            body["worker"] = self.worker
        if self.detail:
            body["detail"] = self.detail
        return body

    @classmethod
    def from_entry(cls, stream_id: str, fields: dict[str, str]) -> Event:
        try:
            attempt = int(fields.get("attempt") or 0)
        except ValueError:
            attempt = 0
        return cls(
            id=stream_id,
            event=fields.get("ev", ""),
            job=fields.get("job", ""),
            status=fields.get("status", ""),
            queue=fields.get("queue", ""),
            type=fields.get("type", ""),
            attempt=attempt,
            worker=fields.get("worker", ""),
            detail=fields.get("detail", ""),
        )


@dataclass(frozen=True)
class Filter:
    queue: str | None = None
    type: str | None = None
    job: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (self.queue is None or event.queue == self.queue)
            and (self.type is None or event.type == self.type)
            and (self.job is None or event.job == self.job)
        )


def configure(client: redis.Redis, keys: Keys, events_max: int) -> int | None:
    """Writes EVENTS_MAX where the scripts read it; returns the value it replaced (None: none).
    A different value replaced is logged as a warning: two processes disagree."""
    previous = client.set(keys.events_max, events_max, get=True)
    before = int(previous) if previous is not None and str(previous).isdigit() else None
    if before is not None and before != events_max:
        log.warning(
            "events.max_changed",
            extra={
                "before": before,
                "after": events_max,
                "hint": "processes disagree on EVENTS_MAX; the last one started wins",
            },
        )
    return before


def configure_at_start(client: redis.Redis, keys: Keys, events_max: int) -> None:
    """configure() for a starting process: Redis not answering yet is logged, not fatal (the
    scripts use the value already there, or the default, until a process writes it)."""
    try:
        configure(client, keys, events_max)
    except redis.RedisError as ex:
        log.warning("events.max_not_written", extra={"error": str(ex), "events_max": events_max})


def read_after(client: redis.Redis, keys: Keys, after: str, count: int) -> list[Event]:
    """Up to `count` entries after the position `after` (a stream id), oldest first."""
    if id_key(after) == (_SEQ_MAX, _SEQ_MAX):
        return []  # nothing can come after the last possible id (Redis refuses the range)
    entries: Any = client.xrange(keys.events, min=f"({after}", max="+", count=count)
    return entries_to_events(entries)


def entries_to_events(entries: Any) -> list[Event]:
    """Events from XRANGE / XREAD entries, [(id, {field: value}), ...] (decoded replies)."""
    return [Event.from_entry(str(stream_id), dict(fields)) for stream_id, fields in entries]


def last_id(client: redis.Redis, keys: Keys) -> str:
    """The newest entry's id ('0-0' when the stream is empty or absent)."""
    entries: Any = client.xrevrange(keys.events, max="+", min="-", count=1)
    return str(entries[0][0]) if entries else "0-0"


def missed_since(client: redis.Redis, keys: Keys, after: str) -> bool:
    """Whether entries after `after` may have been trimmed away (a reader resuming there
    missed some): the oldest entry kept is younger than `after` and the stream was trimmed.
    Errs towards saying so (when exactly the entries up to `after` went, nothing was missed);
    `0-0` (from the oldest kept) never has a gap."""
    if after == "0-0":
        return False
    try:
        info: Any = client.xinfo_stream(keys.events)
    except redis.ResponseError:  # no such key: nothing written, nothing missed
        return False
    first = info.get("first-entry")
    added = info.get("entries-added")  # Redis >= 7; before, assume it was trimmed
    trimmed = added is None or int(added) > int(info.get("length", 0))
    return bool(first) and trimmed and id_key(str(first[0])) > id_key(after)
