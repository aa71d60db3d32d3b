"""/metrics: Prometheus text by default, JSON on `Accept: application/json`. Figures are global:
read from Redis on every scrape, so any API process answers the same."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import falcon
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from workstream.common.metrics import COUNTERS, QUEUE_DEPTHS, MetricsSnapshot, read_snapshot
from workstream.common.store import JobStore

PREFIX = "workstream"


class SnapshotCollector(Collector):
    """Reads one snapshot per scrape; a Redis error propagates (the API answers 503)."""

    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from _counters(snap)
        stale = CounterMetricFamily(
            f"{PREFIX}_stale_completions", "Late results rejected by lease fencing."
        )
        stale.add_metric([], snap.stale_completions)
        yield stale
        yield from _depths(snap)
        live = GaugeMetricFamily(f"{PREFIX}_workers_live", "Workers with a recent heartbeat.")
        live.add_metric([], snap.workers_live)
        yield live
        yield from _histograms(snap)
        yield from _outbox(snap)


def _outbox(snap: MetricsSnapshot) -> Iterator[Metric]:
    """Only with QUEUE_SHARDS (the snapshot has no outbox figures otherwise)."""
    if not snap.outbox:
        return
    owed = GaugeMetricFamily(
        f"{PREFIX}_outbox_owed",
        "Hand-offs a shard owes other shards (QUEUE_SHARDS), not yet performed.",
        labels=["shard"],
    )
    oldest = GaugeMetricFamily(
        f"{PREFIX}_outbox_oldest_due_seconds",
        "How long a shard's oldest owed hand-off has been due (0: none due); growing means no "
        "mover runs.",
        labels=["shard"],
    )
    for shard, figures in sorted(snap.outbox.items()):
        owed.add_metric([shard], figures.owed)
        oldest.add_metric([shard], figures.oldest_due_s)
    yield owed
    yield oldest


def _counters(snap: MetricsSnapshot) -> Iterator[Metric]:
    for counter in COUNTERS:
        family = CounterMetricFamily(
            f"{PREFIX}_jobs_{counter}",
            f"Jobs {counter}, by queue and type.",
            labels=["queue", "type"],
        )
        for (name, queue, job_type), value in sorted(snap.counters.items()):
            if name == counter:
                family.add_metric([queue, job_type], value)
        yield family


def _depths(snap: MetricsSnapshot) -> Iterator[Metric]:
    for depth in QUEUE_DEPTHS:
        family = GaugeMetricFamily(
            f"{PREFIX}_queue_{depth}", f"Jobs {depth} per queue.", labels=["queue"]
        )
        for info in snap.queues:
            family.add_metric([info.name], getattr(info, depth))
        yield family
    paused = GaugeMetricFamily(
        f"{PREFIX}_queue_paused", "1 when a queue is paused.", labels=["queue"]
    )
    for info in snap.queues:
        paused.add_metric([info.name], 1 if info.paused else 0)
    yield paused


def _histograms(snap: MetricsSnapshot) -> Iterator[Metric]:
    for name, doc in (("wait", "Enqueue to start"), ("run", "Start to completion")):
        family = HistogramMetricFamily(
            f"{PREFIX}_job_{name}_seconds", f"{doc}, in seconds.", labels=["queue"]
        )
        for queue, histogram in sorted(snap.histograms.get(name, {}).items()):
            buckets = [
                ("+Inf" if math.isinf(bound) else str(bound), count)
                for bound, count in histogram.buckets
            ]
            family.add_metric([queue], buckets, histogram.sum_s)
        yield family


class Metrics:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        # A private registry: the figures come from Redis, not from this process.
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(SnapshotCollector(lambda: read_snapshot(store)))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        preferred = req.client_prefers(("text/plain", falcon.MEDIA_JSON))
        if preferred == falcon.MEDIA_JSON:
            resp.media = read_snapshot(self._store).to_json()
            return
        resp.data = generate_latest(self._registry)
        resp.content_type = CONTENT_TYPE_PLAIN_0_0_4
