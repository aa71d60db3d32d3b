"""The dashboard's recent past: the cumulative counters and wait/run histograms as they stood
once a minute, kept in Redis for an hour, so a page opened now can draw the last 15 minutes.

Nothing is added to the job path: an API process copies the stats hash the scripts already
keep. Each minute's snapshot is one string key written with SET NX EX, so whichever API process
gets there first writes it, every other one finds it there and writes nothing, and Redis drops
it after an hour: no lock and no trimming, and at most SNAPSHOTS_KEPT keys. A point is the
difference between two consecutive snapshots (the newest one: between the last snapshot and the
stats read now), divided by the time between them, so it is exact however late in its minute a
snapshot was taken.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from workstream.common.metrics import BOUNDS_S, COUNTERS, HISTOGRAMS, Histogram, parse_stats
from workstream.common.redis_conn import is_cluster
from workstream.common.serialization import ms_to_rfc3339
from workstream.common.store import JobStore

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
MAX_MINUTES = 60
# The window's first minute needs the snapshot before it as its baseline.
SNAPSHOTS_KEPT = MAX_MINUTES + 2
SNAPSHOT_TTL_S = SNAPSHOTS_KEPT * 60
# How often each API process asks whether a new minute has begun: one TIME call.
SAMPLE_INTERVAL_S = 5.0
# A stretch shorter than this (a snapshot taken just now) says nothing about a rate.
MIN_POINT_MS = 1000
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class Snapshot:
    """Totals over every queue and type at `at_ms` (Redis server time)."""

    at_ms: int
    counters: dict[str, int]
    histograms: dict[str, Histogram]

    @classmethod
    def from_stats(cls, stats: Mapping[str, int], at_ms: int) -> Snapshot:
        counters, per_queue = parse_stats(stats)
        totals = dict.fromkeys(COUNTERS, 0)
        for (name, _, _), value in counters.items():
            totals[name] += value
        merged = {}
        for name in HISTOGRAMS:
            total = Histogram.empty()
            for histogram in per_queue.get(name, {}).values():
                total = total + histogram
            merged[name] = total
        return cls(at_ms, totals, merged)

    def to_text(self) -> str:
        return json.dumps(
            {
                "at_ms": self.at_ms,
                "counters": self.counters,
                **{
                    name: {"cumulative": [n for _, n in h.buckets], "sum_s": h.sum_s}
                    for name, h in self.histograms.items()
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_text(cls, text: str) -> Snapshot | None:
        """None for a value this code cannot read (written by hand or by other code)."""
        try:
            data = json.loads(text)
            counters = {name: int(data["counters"].get(name, 0)) for name in COUNTERS}
            histograms = {}
            for name in HISTOGRAMS:
                cumulative = [int(n) for n in data[name]["cumulative"]]
                if len(cumulative) != len(BOUNDS_S):
                    return None  # another bucket layout: not comparable
                buckets = tuple(zip(BOUNDS_S, cumulative, strict=True))
                histograms[name] = Histogram(buckets, float(data[name]["sum_s"]))
            return cls(int(data["at_ms"]), counters, histograms)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def quantile(q: float, buckets: Sequence[tuple[float, int]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative (bound, count) pairs: linear within the
    bucket; in the +Inf bucket the best answer is its lower edge. None with no observations."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            within = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * within
        if not math.isinf(bound):
            lower_bound = bound
        lower_count = count
    return lower_bound


def point(before: Snapshot, after: Snapshot) -> dict[str, Any] | None:
    """What happened between two snapshots; None when a total fell (a deleted queue took its
    counters along), since no honest figure can be given for that stretch."""
    span_ms = after.at_ms - before.at_ms
    if span_ms < MIN_POINT_MS:
        return None
    counts = {name: after.counters[name] - before.counters[name] for name in COUNTERS}
    deltas: dict[str, list[tuple[float, int]]] = {}
    for name in HISTOGRAMS:
        pairs = zip(after.histograms[name].buckets, before.histograms[name].buckets, strict=True)
        deltas[name] = [(bound, now - then) for (bound, now), (_, then) in pairs]
    if min(counts.values()) < 0 or any(n < 0 for d in deltas.values() for _, n in d):
        return None
    seconds = span_ms / 1000
    body: dict[str, Any] = {
        "start": ms_to_rfc3339(before.at_ms),
        "end": ms_to_rfc3339(after.at_ms),
        "seconds": seconds,
        **counts,
        "completed_per_s": round(counts["completed"] / seconds, 4),
        "failed_per_s": round(counts["failed"] / seconds, 4),
    }
    for name in HISTOGRAMS:
        body[f"{name}_seconds"] = {
            "count": deltas[name][-1][1],
            **{label: quantile(q, deltas[name]) for label, q in QUANTILES},
        }
    return body


def _now_and_stats(store: JobStore) -> tuple[int, dict[str, int]]:
    """The stats hash and the server time it was read at, in one transaction. With shards
    (common/shards.py) or on a cluster: every shard's stats summed, the clock read just before
    (a cluster transaction holds one slot's commands, TIME has none)."""
    if store.settings.queue_shards or is_cluster(store.redis):
        return store.server_time_ms(), store.stats()
    pipe = store.redis.pipeline(transaction=True)
    pipe.time()
    pipe.hgetall(store.keys.stats)
    (seconds, micros), stats = pipe.execute()
    return int(seconds) * 1000 + int(micros) // 1000, {str(k): int(v) for k, v in stats.items()}


def write(store: JobStore, snapshot: Snapshot) -> bool:
    """Stores `snapshot` as its minute's, unless that minute already has one."""
    key = store.keys.timeline(snapshot.at_ms // MINUTE_MS)
    return bool(store.redis.set(key, snapshot.to_text(), nx=True, ex=SNAPSHOT_TTL_S))


def record(store: JobStore) -> int:
    """Writes this minute's snapshot if no process has; returns the minute (Redis time)."""
    now_ms = store.server_time_ms()
    minute = now_ms // MINUTE_MS
    if not store.redis.exists(store.keys.timeline(minute)):
        at_ms, stats = _now_and_stats(store)
        write(store, Snapshot.from_stats(stats, at_ms))
    return minute


def read(store: JobStore, minutes: int) -> dict[str, Any]:
    """The last `minutes` (1..MAX_MINUTES) as points, oldest first; the newest ends now. Also
    writes this minute's snapshot when it is missing, so a reader keeps the record going."""
    now_ms, stats = _now_and_stats(store)
    current = Snapshot.from_stats(stats, now_ms)
    minute = now_ms // MINUTE_MS
    keys = [store.keys.timeline(m) for m in range(minute - minutes, minute + 1)]
    stored = store.redis.mget(keys)
    if stored[-1] is None:
        write(store, current)
    snapshots = [s for s in (Snapshot.from_text(str(t)) for t in stored if t) if s is not None]
    snapshots.append(current)
    window_start_ms = now_ms - minutes * MINUTE_MS
    points = [
        p
        for before, after in itertools.pairwise(snapshots)
        if after.at_ms > window_start_ms and (p := point(before, after)) is not None
    ]
    return {
        "minutes": minutes,
        "now": ms_to_rfc3339(now_ms),
        "interval_s": MINUTE_MS // 1000,
        "points": points,
    }


class Sampler:
    """A daemon thread in each API process: one TIME call every SAMPLE_INTERVAL_S, and once a
    minute an EXISTS (plus, for the first process to see the minute, HGETALL and SET NX)."""

    def __init__(
        self, store: JobStore, stopping: threading.Event, interval_s: float = SAMPLE_INTERVAL_S
    ) -> None:
        self._store = store
        self._stopping = stopping
        self._interval_s = interval_s
        self._minute: int | None = None
        self._thread = threading.Thread(target=self._run, name="timeline-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def tick(self) -> None:
        if self._minute == self._store.server_time_ms() // MINUTE_MS:
            return
        self._minute = record(self._store)

    def _run(self) -> None:
        failing = False
        while True:
            try:
                self.tick()
                failing = False
            except Exception as ex:  # the thread must outlive any one failure, Redis's or ours
                if not failing:  # one line per outage, not one per tick
                    log.warning(
                        "timeline.sample_failed",
                        extra={"error": str(ex)},
                        exc_info=not isinstance(ex, redis.RedisError),
                    )
                failing = True
            if self._stopping.wait(self._interval_s):
                return
