"""GET /events: the job event stream (common/events.py) as Server-Sent Events, and the hub that
lets every stream and long-poll of an API process share one Redis reader.

One response, one batch. waitress sends a reply's bytes from its loop thread once the request
is done, or from the pool thread once SEND_BYTES (64 KiB, api/dispatch.py) are buffered; bytes
written by a request still running below that stay buffered (and keep the loop polling the
socket). So a response holds its thread while nothing matches, without writing, up to
EVENTS_HOLD; writes what is there once something matches (up to BATCH events); and ends. An
idle response ends with a heartbeat comment. Each response starts with `retry:`, and every
message, the heartbeat included, carries its position in `id:`, so EventSource and
`workstream events` resume at once with Last-Event-ID and miss nothing still in the stream.

Bounds. At most EVENTS_STREAMS responses wait at once per process (503 too_many_streams beyond,
Retry-After 1); their threads are taken from the long-polls' share (api/app.py), so POST /jobs
always finds a thread. No response blocks a pooled Redis connection: the hub reads the stream
with XREAD BLOCK (1 s at a time) on a connection of its own, and responses wait on the hub in
memory; a pooled connection is used only for short XRANGE pages, when a client resumes from
further back than the hub's buffer.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import falcon
import redis

from workstream.api import validation
from workstream.api.errors import ApiError, validation_error
from workstream.common.events import (
    TERMINAL_STATUSES,
    Event,
    Filter,
    MalformedEventId,
    entries_to_events,
    format_positions,
    id_key,
    last_id,
    missed_since,
    parse_positions,
    read_after,
)
from workstream.common.jobs import TYPE_PATTERN
from workstream.common.keys import Keys
from workstream.common.shards import shard_of

log = logging.getLogger(__name__)

# Entries the hub keeps in memory, newest last: a reader behind them reads Redis instead.
HUB_BUFFER = 4096
HUB_BLOCK_MS = 1000
HUB_READ_COUNT = 500
HUB_IDLE_S = 30.0
# Events one response carries at most, and entries it looks through (filters) at most.
BATCH = 500
SCAN_MAX = 5000
PAGE = 500
# The reconnection delay a response asks of EventSource (ms).
RETRY_MS = 250
# A waiting reader re-checks Redis itself at least this often (a hub that lost Redis).
RECHECK_S = 1.0


class EventHub:
    """One XREAD BLOCK reader per process, started on first use; readers wait on it in memory.
    `after(position)` answers every entry after a position from the buffer, or None when the
    buffer does not reach back that far (the reader then reads Redis)."""

    def __init__(
        self,
        connect_reader: Callable[[], redis.Redis],
        keys: Keys,
        stopping: threading.Event,
        *,
        buffer_size: int = HUB_BUFFER,
        block_ms: int = HUB_BLOCK_MS,
    ) -> None:
        self._connect = connect_reader
        self._keys = keys
        self._stopping = stopping
        self._size = buffer_size
        self._block_ms = block_ms
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._ids: list[tuple[int, int]] = []
        # Every entry after _floor is in the buffer (None: not reading yet).
        self._floor: tuple[int, int] | None = None
        self._floor_id = "0-0"
        self._newest = "0-0"
        self._thread: threading.Thread | None = None
        self._used_at = 0.0
        # Set on every change, for a reader waiting on several hubs at once (wait_any).
        self._listeners: set[threading.Event] = set()

    def ensure_started(self) -> None:
        with self._cond:
            self._used_at = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="event-hub", daemon=True)
                self._thread.start()

    @property
    def newest(self) -> str | None:
        """The newest position the hub has read up to (None: not reading yet)."""
        with self._cond:
            return self._newest if self._floor is not None else None

    @property
    def floor(self) -> str | None:
        """Every entry after this position is in the buffer (None: not reading yet)."""
        with self._cond:
            return self._floor_id if self._floor is not None else None

    def after(self, position: str) -> list[Event] | None:
        key = id_key(position)
        with self._cond:
            if self._floor is None or key < self._floor:
                return None
            return self._events[bisect.bisect_right(self._ids, key) :]

    def wait(self, position: str, timeout: float) -> None:
        """Until an entry after `position` arrives, shutdown, or `timeout` seconds."""
        key = id_key(position)
        self.ensure_started()  # a waiting reader keeps the hub running (or starts it again)
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._stopping.is_set()
                    or (self._floor is not None and id_key(self._newest) > key)
                ),
                timeout,
            )

    def listen(self, listener: threading.Event, position: str) -> bool:
        """Registers `listener` (set on the next change); True when an entry after `position`
        is there already (then nothing is registered)."""
        key = id_key(position)
        with self._cond:
            if self._floor is not None and id_key(self._newest) > key:
                return True
            self._listeners.add(listener)
            return False

    def unlisten(self, listener: threading.Event) -> None:
        with self._cond:
            self._listeners.discard(listener)

    def _main(self) -> None:
        """_run, and whatever ends it unexpectedly is logged and leaves the hub stopped (not
        looking started), so the next reader starts it again."""
        try:
            self._run()
        except Exception:
            log.exception("events.hub_died")
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread, self._floor = None, None
                    self._events, self._ids = [], []
                    self._cond.notify_all()
                    self._tell()

    def _run(self) -> None:
        client: redis.Redis | None = None
        position: str | None = None
        failing = False
        while not self._stopping.is_set() and not self._idle():
            try:
                if client is None:
                    client = self._connect()
                if position is None:
                    position = last_id(client, self._keys)
                    with self._cond:
                        self._events, self._ids = [], []
                        self._floor, self._floor_id = id_key(position), position
                        self._newest = position
                        self._cond.notify_all()
                        self._tell()
                reply: Any = client.xread(
                    {self._keys.events: position}, count=HUB_READ_COUNT, block=self._block_ms
                )
                if failing:
                    log.info("events.hub_reconnected")
                    failing = False
                if reply:
                    events = entries_to_events(reply[0][1])
                    position = events[-1].id
                    self._add(events)
            except (redis.RedisError, redis.exceptions.RedisClusterException) as ex:
                # RedisClusterException (no node reachable) is not a RedisError: uncaught, it
                # ended the thread while the hub still looked started, so no reader saw
                # another event until the process restarted.
                if not failing:
                    log.warning("events.hub_failed", extra={"error": str(ex)})
                    failing = True
                if client is not None:
                    client.close()
                    client = None
                self._stopping.wait(RECHECK_S)
        if client is not None:
            client.close()

    def _idle(self) -> bool:
        """Nobody used the hub for HUB_IDLE_S: it stops (its connection closes) until the next
        reader starts it again."""
        with self._cond:
            if time.monotonic() - self._used_at < HUB_IDLE_S:
                return False
            self._thread, self._floor = None, None
            self._events, self._ids = [], []
            self._cond.notify_all()
            self._tell()
            return True

    def _add(self, events: list[Event]) -> None:
        with self._cond:
            self._events.extend(events)
            self._ids.extend(id_key(event.id) for event in events)
            if len(self._events) > 2 * self._size:  # amortized: cut once per `size` entries
                cut = len(self._events) - self._size
                self._floor, self._floor_id = self._ids[cut - 1], self._events[cut - 1].id
                self._events, self._ids = self._events[cut:], self._ids[cut:]
            self._newest = events[-1].id
            self._cond.notify_all()
            self._tell()

    def _tell(self) -> None:
        """Wakes the readers waiting on several hubs (the caller holds the lock)."""
        for listener in self._listeners:
            listener.set()


def wait_any(waits: Sequence[tuple[EventHub, str]], timeout: float) -> None:
    """Until an entry after its position arrives at any of the hubs, or `timeout` seconds (a
    merged stream's wait: one listener registered with every shard's hub)."""
    listener = threading.Event()
    try:
        for hub, position in waits:
            hub.ensure_started()  # a waiting reader keeps each hub running
            if hub.listen(listener, position):
                return
        listener.wait(timeout)
    finally:
        for hub, _ in waits:
            hub.unlisten(listener)


def _message(event: Event) -> str:
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.event}\ndata: {data}\n\n"


@dataclass(frozen=True)
class Source:
    """One shard's stream: its keys, a client for short reads, and its hub."""

    redis: redis.Redis
    keys: Keys
    hub: EventHub


class EventStream:
    """GET /events[?queue=&type=&job=&last_event_id=|since=] (Last-Event-ID header first).

    Shards (QUEUE_SHARDS, common/shards.py): each shard's scripts write their own stream. A
    `job` or `queue` filter is served from that job's or queue's shard; without either, every
    shard's stream, merged: entries in time order (the entry id's ms; ties in shard order, the
    default shard first), each shard's in exactly its own order, and every id carries a
    position per shard (common/events.py), so a resumed reader misses nothing and sees nothing
    twice on any shard. Without shards (one source) the single-stream path below is the only
    one taken: ids, messages and cost are what they were."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        route: Callable[[Filter], str],
        *,
        streams: int,
        hold_s: float,
        stopping: threading.Event,
    ) -> None:
        self._sources = sources
        self._route = route
        self._slots = threading.BoundedSemaphore(max(streams, 1))
        self._hold_s = hold_s
        self._stopping = stopping

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self._sources:
            raise ApiError(404, "events_disabled", "the event stream is off (EVENTS_MAX=0)")
        wanted = _filter(req)
        if wanted.queue is None and (wanted.job is None or shard_of(wanted.job) == ""):
            # Every shard's stream, merged: unfiltered, by type only, or a plain job id (one a
            # script made, e.g. a callback job, may be in any shard; ShardedStore looks in
            # each too). Without shards that is the one stream.
            served = list(self._sources)
        else:
            shard = self._route(wanted)
            served = [shard if shard in self._sources else ""]
        raw = (
            req.get_header("Last-Event-ID")
            or req.get_param("last_event_id")
            or req.get_param("since")
        )
        try:
            given = parse_positions(raw) if raw else None
        except MalformedEventId:
            raise ApiError(
                400,
                "malformed_event_id",
                "Last-Event-ID (or last_event_id, since) must be an event id `<ms>-<seq>` "
                "or a time in ms, or one position per shard `<ms>-<seq>,<shard>=<ms>-<seq>,...`",
                field="Last-Event-ID",
            ) from None
        unknown = sorted(shard for shard in given or () if shard not in self._sources)
        if unknown:
            raise ApiError(
                400,
                "unknown_event_shard",
                f"Last-Event-ID (or last_event_id, since) names shards this API does not have "
                f"(QUEUE_SHARDS): {', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}",
                field="Last-Event-ID",
            )
        positions = None if given is None else _resume_positions(given, served)
        if not self._slots.acquire(blocking=False):
            raise ApiError(
                503,
                "too_many_streams",
                "this API process serves as many event streams as EVENTS_STREAMS allows; "
                "retry shortly",
                headers={"Retry-After": "1"},
            )
        try:
            if served == [""]:  # one stream, the default shard's: no shards (or filtered)
                source = self._sources[""]
                source.hub.ensure_started()
                body = self._collect(source, None if positions is None else positions[""], wanted)
            else:
                for shard in served:
                    self._sources[shard].hub.ensure_started()
                body = self._collect_merged(served, positions, wanted)
        finally:
            self._slots.release()
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.text = body

    def _collect(self, source: Source, position: str | None, wanted: Filter) -> str:
        hub = source.hub
        parts = [f"retry: {RETRY_MS}\n\n"]
        if position is None:
            position = hub.newest or last_id(source.redis, source.keys)
        else:
            parts += _gap(source, position)
        deadline = time.monotonic() + self._hold_s
        delivered = scanned = 0
        last_sent = None
        while True:
            events = hub.after(position)
            if events is None:
                events = read_after(source.redis, source.keys, position, PAGE)
                if not events:
                    # Nothing in Redis after it, yet the hub's buffer starts later: join the
                    # buffer where it starts (never past an entry the buffer holds).
                    position = hub.floor or position
            if events:
                events = events[: SCAN_MAX - scanned]
                position = events[-1].id
                scanned += len(events)
                for event in events:
                    if wanted.matches(event):
                        parts.append(_message(event))
                        last_sent = event.id
                        delivered += 1
                if delivered >= BATCH or scanned >= SCAN_MAX:
                    break
                continue
            if delivered:
                break
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.is_set():
                break
            hub.wait(position, min(left, RECHECK_S))
        parts.append(
            _ending(delivered >= BATCH or scanned >= SCAN_MAX, delivered, last_sent, position)
        )
        return "".join(parts)

    def _collect_merged(
        self, served: list[str], positions: dict[str, str] | None, wanted: Filter
    ) -> str:
        """_collect over several shards' streams (or one named shard's): each shard read after
        its own position, the entries merged by (ms, shard order, seq), every message's id the
        positions of all served shards after it."""
        sources = [(shard, self._sources[shard]) for shard in served]
        parts = [f"retry: {RETRY_MS}\n\n"]
        if positions is None:
            positions = {
                shard: source.hub.newest or last_id(source.redis, source.keys)
                for shard, source in sources
            }
        else:
            for shard, source in sources:
                parts += _gap(source, positions[shard], shard)
        deadline = time.monotonic() + self._hold_s
        delivered = scanned = 0
        last_sent: str | None = None
        while True:
            runs, horizon = _next_entries(sources, positions, SCAN_MAX - scanned)
            if runs:
                for key, shard, event in heapq.merge(*runs):
                    if (horizon is not None and key > horizon) or (
                        scanned >= SCAN_MAX or delivered >= BATCH
                    ):
                        break
                    positions[shard] = event.id
                    scanned += 1
                    if wanted.matches(event):
                        last_sent = format_positions(positions)
                        parts.append(_shard_message(event, shard, last_sent))
                        delivered += 1
                if delivered >= BATCH or scanned >= SCAN_MAX:
                    break
                continue
            if delivered:
                break
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.is_set():
                break
            wait_any(
                [(source.hub, positions[shard]) for shard, source in sources],
                min(left, RECHECK_S),
            )
        parts.append(
            _ending(
                delivered >= BATCH or scanned >= SCAN_MAX,
                delivered,
                last_sent,
                format_positions(positions),
            )
        )
        return "".join(parts)


# An entry in a merge: (ms, shard order, seq), shard, event. Tuples compare by the key first:
# time, ties in shard order, each shard's entries in their own order (the key is unique).
Merged = tuple[tuple[int, int, int], str, Event]


def _next_entries(
    sources: Sequence[tuple[str, Source]], positions: dict[str, str], most: int
) -> tuple[list[Iterator[Merged]], tuple[int, int, int] | None]:
    """Each shard's entries after its position (from its hub, else a page from Redis; at
    most `most`, what the response may still look through), as runs for heapq.merge, and the
    horizon: a page read from Redis may stop short of that shard's next entries, so nothing
    later than its last may be taken this round."""
    runs: list[Iterator[Merged]] = []
    horizon: tuple[int, int, int] | None = None
    for index, (shard, source) in enumerate(sources):
        position = positions[shard]
        events = source.hub.after(position)
        if events is None:
            events = read_after(source.redis, source.keys, position, PAGE)
            if not events:
                # As _collect: join the hub's buffer where it starts.
                positions[shard] = source.hub.floor or position
            elif len(events) >= PAGE:
                ms, seq = id_key(events[-1].id)
                horizon = min(horizon or (ms, index, seq), (ms, index, seq))
        if events:
            runs.append(_keyed(events, index, shard, most))
    return runs, horizon


def _keyed(events: list[Event], index: int, shard: str, most: int) -> Iterator[Merged]:
    """A run for heapq.merge, lazy: only the entries the merge reaches are keyed (a response
    takes up to BATCH of what may be thousands in a hub's buffer). A function, not a generator
    expression in the loop, so each run keeps its own shard and index."""
    for event in itertools.islice(events, most):
        yield _merge_key(event, index), shard, event


def _merge_key(event: Event, index: int) -> tuple[int, int, int]:
    ms, seq = id_key(event.id)
    return ms, index, seq


def _resume_positions(given: Mapping[str, str], served: Sequence[str]) -> dict[str, str]:
    """Each served shard's position from an id's: its own, or, for a shard the id does not
    name, the earliest position the id gives (a time: that shard's entries after it)."""
    earliest = min(given.values(), key=id_key)
    return {shard: given.get(shard, earliest) for shard in served}


def _shard_message(event: Event, shard: str, position: str) -> str:
    """A merged stream's message: `id:` and the JSON's `id` are the positions to resume
    after it (every served shard's); `shard` names the stream it came from (absent: the
    default shard's)."""
    body = event.to_dict()
    body["id"] = position
    if shard:
        body["shard"] = shard
    data = json.dumps(body, separators=(",", ":"))
    return f"id: {position}\nevent: {event.event}\ndata: {data}\n\n"


def _gap(source: Source, position: str, shard: str | None = None) -> list[str]:
    """An `event: gap` message when entries after `position` were trimmed away."""
    if not missed_since(source.redis, source.keys, position):
        return []
    first = read_after(source.redis, source.keys, "0-0", 1)
    gap: dict[str, Any] = {"after": position, "oldest": first[0].id if first else None}
    if shard is not None:  # a merged (or named shard's) stream: whose entries were trimmed
        gap["shard"] = shard
    return [f"event: gap\ndata: {json.dumps(gap, separators=(',', ':'))}\n\n"]


def _ending(full: bool, delivered: int, last_sent: str | None, position: str) -> str:
    """`: more` when the response was cut short (more is there already), `: heartbeat` when
    it brings nothing; then the position looked through to, unless its last event says it."""
    ending = ": more\n\n" if full else "" if delivered else ": heartbeat\n\n"
    if last_sent != position:
        # Entries looked through but not matched: the client resumes after them.
        ending += f"id: {position}\n\n"
    return ending


def _filter(req: falcon.Request) -> Filter:
    queue = req.get_param("queue")
    if queue is not None:
        validation.queue_name(queue, "queue")
    job_type = req.get_param("type")
    if job_type is not None and not TYPE_PATTERN.fullmatch(job_type):
        raise validation_error("type", "expected [A-Za-z0-9_.:-]{1,128}")
    job = req.get_param("job")
    if job is not None:
        try:
            job = validation.job_id(job)
        except ApiError:
            raise validation_error("job", "expected a job id") from None
    return Filter(queue=queue, type=job_type, job=job)


def wait_for_terminal(
    hub: EventHub,
    job_id: str,
    is_done: Callable[[], bool],
    deadline: float,
    stopping: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Returns once `job_id` reaches a terminal state (seen in the stream, or is_done() says
    so on a re-check every RECHECK_S), at `deadline` or at shutdown. The hub's position is
    taken before each check, so no transition after it can be missed."""
    hub.ensure_started()
    while True:
        position = hub.newest
        if is_done():
            return
        left = deadline - clock()
        while left > 0 and not stopping.is_set():
            if position is None:
                stopping.wait(min(left, 0.05))  # the hub is starting: check again
                break
            hub.wait(position, min(left, RECHECK_S))
            events = hub.after(position)
            if events is None:
                break  # the hub moved past us (restart, a burst): re-check Redis
            for event in events:
                if event.job == job_id and event.status in TERMINAL_STATUSES:
                    return
            if not events:
                break  # RECHECK_S passed with nothing: re-check Redis
            position = events[-1].id
            left = deadline - clock()
        if deadline - clock() <= 0 or stopping.is_set():
            return
