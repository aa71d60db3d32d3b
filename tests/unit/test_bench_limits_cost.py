"""bench.limits_cost's summary: per-round ratios of the interleaved drains, and the 5 % verdict."""

from __future__ import annotations

from typing import Any

import pytest

from bench.limits_cost import summarise


def runs(before: list[float | None], after: list[float | None]) -> dict[str, list[dict[str, Any]]]:
    def run(rate: float | None) -> dict[str, Any]:
        return {"status": "ok", "drain_jobs_per_s": rate} if rate else {"status": "timeout"}

    return {"before": [run(r) for r in before], "after": [run(r) for r in after]}


def test_the_verdict_is_the_median_of_the_per_round_ratios() -> None:
    # Round by round after/before: 0.9, 1.0, 1.2 -> median 1.0, while the medians of each side
    # (1,000 and 1,200) would say 1.2: a slow round on one side must not decide it.
    summary = summarise(runs([1000, 2000, 500], [900, 2000, 600]), "drain_jobs_per_s")
    assert summary["median_round_ratio"] == pytest.approx(1.0)
    assert summary["rounds_within_bound"] == 2
    assert summary["within_bound"] is True


def test_a_drain_more_than_5_percent_slower_on_the_median_round_is_outside_the_bound() -> None:
    summary = summarise(runs([1000, 1000, 1000], [940, 930, 1100]), "drain_jobs_per_s")
    assert summary["median_round_ratio"] == pytest.approx(0.94)
    assert summary["within_bound"] is False


def test_rounds_where_either_drain_failed_are_left_out_and_counted() -> None:
    summary = summarise(runs([1000, None, 1000], [1000, 1000, None]), "drain_jobs_per_s")
    assert (summary["rounds"], summary["failed_rounds"]) == (1, 2)
    assert summarise(runs([None], [None]), "drain_jobs_per_s")["rounds"] == 0
