"""The timeline's percentile arithmetic and its snapshot format (no Redis)."""

from __future__ import annotations

import math

import pytest

from workstream.common.metrics import BOUNDS_S
from workstream.common.timeline import Snapshot, point, quantile


def test_quantile_interpolates_within_the_bucket_that_holds_the_rank() -> None:
    buckets = [(0.1, 0), (0.2, 10), (math.inf, 10)]

    assert quantile(0.5, buckets) == pytest.approx(0.15)


def test_quantile_in_the_inf_bucket_is_its_lower_edge() -> None:
    assert quantile(0.99, [(0.1, 1), (0.2, 1), (math.inf, 100)]) == 0.2


def test_quantile_of_no_observations_is_none() -> None:
    assert quantile(0.5, [(0.1, 0), (math.inf, 0)]) is None


def test_a_snapshot_reads_back_as_written() -> None:
    stats = {"completed|q|t": 4, "failed|q|t": 1, "run|q|3": 4, "run_sum_ms|q": 30}
    snapshot = Snapshot.from_stats(stats, 1_000)

    assert Snapshot.from_text(snapshot.to_text()) == snapshot


def test_a_snapshot_with_another_bucket_layout_is_not_read() -> None:
    text = Snapshot.from_stats({}, 1_000).to_text().replace("[0,", "[", 1)

    assert Snapshot.from_text(text) is None


def test_a_point_gives_the_run_time_percentiles_of_its_own_stretch_only() -> None:
    # 10 slow runs before, 10 runs of at most 1 ms during the stretch.
    slow = len(BOUNDS_S) - 1
    before = Snapshot.from_stats({f"run|q|{slow}": 10}, 0)
    after = Snapshot.from_stats({f"run|q|{slow}": 10, "run|q|1": 10}, 60_000)

    body = point(before, after)

    assert body is not None and body["run_seconds"]["count"] == 10
    assert body["run_seconds"]["p99"] <= 0.001
