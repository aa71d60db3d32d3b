"""Global figures read from Redis on demand: counters, queue depths, live workers and latency
histograms, as one snapshot that both the Prometheus exposition and the JSON view render.

The stats hash holds `<counter>|<queue>|<type>` counters, `stale_completions`, and per queue
histograms: `wait|<queue>|<i>` / `run|<queue>|<i>` are NON-cumulative counts for bucket i
(1..len(BUCKETS_MS)+1, the last one +Inf) and `wait_sum_ms|<queue>` / `run_sum_ms|<queue>` the sums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workstream.common.keys import Keys
from workstream.common.scripts import BUCKETS_MS, COUNTERS
from workstream.common.shards import shard_names
from workstream.common.store import JobStore, QueueInfo

__all__ = [
    "COUNTERS",
    "HISTOGRAMS",
    "JSON_ALIASES",
    "Histogram",
    "MetricsSnapshot",
    "read_snapshot",
]
HISTOGRAMS: tuple[str, ...] = ("wait", "run")
# waiting: jobs waiting for their parents (depends_on).
QUEUE_DEPTHS: tuple[str, ...] = ("pending", "processing", "scheduled", "failed", "waiting")
BOUNDS_S: tuple[float, ...] = (*(bound / 1000 for bound in BUCKETS_MS), math.inf)
# The JSON view's names from before they followed the Prometheus names, kept for old readers:
# alias -> name (and `histograms.wait_seconds` / `.run_seconds` for `job_wait_seconds` / ...).
JSON_ALIASES: dict[str, str] = {
    "total_jobs_created": "jobs_created_total",
    "jobs_completed": "jobs_completed_total",
    "jobs_failed": "jobs_failed_total",
    "jobs_retried": "jobs_retried_total",
    "jobs_recovered": "jobs_recovered_total",
    "jobs_cancelled": "jobs_cancelled_total",
    "jobs_in_progress": "queue_processing",
    "stale_completions": "stale_completions_total",
}


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets (upper bound in seconds, +Inf last), sum in seconds, count."""

    buckets: tuple[tuple[float, int], ...]
    sum_s: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1]

    @classmethod
    def empty(cls) -> Histogram:
        return cls(tuple((bound, 0) for bound in BOUNDS_S), 0.0)

    @classmethod
    def from_counts(cls, counts: list[int], sum_ms: int) -> Histogram:
        running, buckets = 0, []
        for bound, count in zip(BOUNDS_S, counts, strict=True):
            running += count
            buckets.append((bound, running))
        return cls(tuple(buckets), sum_ms / 1000)

    def __add__(self, other: Histogram) -> Histogram:
        buckets = tuple(
            (bound, mine + theirs)
            for (bound, mine), (_, theirs) in zip(self.buckets, other.buckets, strict=True)
        )
        return Histogram(buckets, self.sum_s + other.sum_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": [["+Inf" if math.isinf(b) else b, n] for b, n in self.buckets],
            "sum": self.sum_s,
            "count": self.count,
        }


@dataclass(frozen=True)
class OutboxFigures:
    owed: int
    oldest_due_s: float


@dataclass(frozen=True)
class MetricsSnapshot:
    counters: dict[tuple[str, str, str], int]  # (counter, queue, type) -> value
    stale_completions: int
    queues: list[QueueInfo]
    workers_live: int
    histograms: dict[str, dict[str, Histogram]] = field(default_factory=dict)  # name -> queue
    # Hand-offs between shards (QUEUE_SHARDS, common/outbox.py), per source shard ("" the
    # default): entries owed, and how long the oldest has been due (s, 0 when none is due).
    # Empty without shards. A growing age means no mover runs (no worker or API up).
    outbox: dict[str, OutboxFigures] = field(default_factory=dict)

    def total(self, counter: str) -> int:
        return sum(v for (name, _, _), v in self.counters.items() if name == counter)

    def overall(self, name: str) -> Histogram:
        merged = Histogram.empty()
        for histogram in self.histograms.get(name, {}).values():
            merged = merged + histogram
        return merged

    def to_json(self) -> dict[str, Any]:
        """One style: each figure under its Prometheus name less `workstream_`, summed over
        labels; the first WorkStream's names follow as aliases (JSON_ALIASES)."""
        body: dict[str, Any] = {f"jobs_{name}_total": self.total(name) for name in COUNTERS}
        body["stale_completions_total"] = self.stale_completions
        for depth in QUEUE_DEPTHS:
            body[f"queue_{depth}"] = sum(getattr(q, depth) for q in self.queues)
        body["workers_live"] = self.workers_live
        if self.outbox:
            body["outbox"] = {
                shard: {"owed": f.owed, "oldest_due_seconds": f.oldest_due_s}
                for shard, f in self.outbox.items()
            }
        # Figures only: a queue's settings (limits, ...) belong to /queues, not to /metrics.
        body["queues"] = {
            q.name: {
                **{depth: getattr(q, depth) for depth in QUEUE_DEPTHS},
                "paused": q.paused,
            }
            for q in self.queues
        }
        for name in HISTOGRAMS:
            body[f"job_{name}_seconds"] = self.overall(name).to_json()
        for alias, name in JSON_ALIASES.items():
            body[alias] = body[name]
        body["histograms"] = {f"{name}_seconds": body[f"job_{name}_seconds"] for name in HISTOGRAMS}
        return body


def parse_stats(
    stats: Mapping[str, int],
) -> tuple[dict[tuple[str, str, str], int], dict[str, dict[str, Histogram]]]:
    """Splits the stats hash into counters and per-queue histograms; unknown fields are skipped
    so that a newer worker adding figures never breaks an older API."""
    counters: dict[tuple[str, str, str], int] = {}
    counts: dict[str, dict[str, list[int]]] = {name: {} for name in HISTOGRAMS}
    sums: dict[str, dict[str, int]] = {name: {} for name in HISTOGRAMS}
    for key, value in stats.items():
        parts = key.split("|")
        if len(parts) == 3 and parts[0] in COUNTERS:
            counters[(parts[0], parts[1], parts[2])] = value
        elif len(parts) == 3 and parts[0] in HISTOGRAMS and parts[2].isdigit():
            index = int(parts[2])
            if 1 <= index <= len(BOUNDS_S):
                per_queue = counts[parts[0]].setdefault(parts[1], [0] * len(BOUNDS_S))
                per_queue[index - 1] = value
        elif len(parts) == 2 and parts[0].endswith("_sum_ms") and parts[0][:-7] in HISTOGRAMS:
            sums[parts[0][:-7]][parts[1]] = value
    histograms = {
        name: {
            queue: Histogram.from_counts(counts[name].get(queue, [0] * len(BOUNDS_S)), total)
            for queue, total in _union(counts[name], sums[name]).items()
        }
        for name in HISTOGRAMS
    }
    return counters, histograms


def _union(counts: Mapping[str, list[int]], sums: Mapping[str, int]) -> dict[str, int]:
    return {queue: sums.get(queue, 0) for queue in sorted(set(counts) | set(sums))}


def read_snapshot(store: JobStore) -> MetricsSnapshot:
    """A handful of round trips whatever the number of jobs (bounded by queues and types)."""
    stats = store.stats()
    counters, histograms = parse_stats(stats)
    return MetricsSnapshot(
        counters=counters,
        stale_completions=stats.get("stale_completions", 0),
        queues=store.queue_infos(),
        workers_live=store.live_worker_count(),
        histograms=histograms,
        outbox=read_outbox(store),
    )


def read_outbox(store: JobStore) -> dict[str, OutboxFigures]:
    """Each shard's outbox: one pipelined round trip (ZCARD and the first entry a shard), none
    without QUEUE_SHARDS (nothing is ever owed then)."""
    if not store.settings.queue_shards:
        return {}
    shards = shard_names(store.settings)
    pipe = store.redis.pipeline(transaction=False)
    for shard in shards:
        outbox = Keys(store.settings.namespace, shard).outbox
        pipe.zcard(outbox)
        pipe.zrange(outbox, 0, 0, withscores=True)
    pipe.time()
    replies = pipe.execute()
    seconds, micros = replies[-1]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    figures = {}
    for index, shard in enumerate(shards):
        owed, first = int(replies[2 * index]), replies[2 * index + 1]
        due_ms = float(first[0][1]) if first else float(now_ms)
        figures[shard] = OutboxFigures(owed, max(now_ms - due_ms, 0.0) / 1000)
    return figures
