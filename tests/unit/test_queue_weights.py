"""QUEUES with weights: parsed and validated at start-up; each claim's queue order is a weighted
random choice (worker.fetcher.claim_order), so each queue comes first about weight/total of the
time; without weights the order is strict."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from workstream.common.errors import SettingsError
from workstream.common.settings import Settings
from workstream.worker.fetcher import claim_order


def settings(queues: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": "redis://127.0.0.1:1/0", "QUEUES": queues})


def test_weights_are_read_beside_the_names() -> None:
    parsed = settings("critical:6, default:3,low:1")
    assert parsed.queues == ("critical", "default", "low")
    assert parsed.queue_weights == (6, 3, 1)


def test_names_alone_are_strict_order() -> None:
    parsed = settings("critical,default,low")
    assert parsed.queues == ("critical", "default", "low") and parsed.queue_weights == ()


@pytest.mark.parametrize(
    ("queues", "says"),
    [
        ("critical:6,default", "give every queue a weight"),
        ("critical:0", "a weight from 1 to 1000"),
        ("critical:-1", "a weight from 1 to 1000"),
        ("critical:1001", "a weight from 1 to 1000"),
        ("critical:2.5", "a weight from 1 to 1000"),
        ("critical:", "a weight from 1 to 1000"),
        ("critical:x", "a weight from 1 to 1000"),
        ("bad name:1", "expected 1-64 characters"),
        ("a:1,a:2", "listed twice"),
    ],
)
def test_a_bad_weighted_list_is_a_start_up_error_naming_queues(queues: str, says: str) -> None:
    with pytest.raises(SettingsError, match="QUEUES") as refused:
        settings(queues)
    assert says in str(refused.value)


def test_strict_order_is_kept_as_configured() -> None:
    rng = random.Random(1)
    assert all(claim_order(["a", "b", "c"], (), rng) == ["a", "b", "c"] for _ in range(50))


def test_each_queue_comes_first_about_its_share_of_claims() -> None:
    rng = random.Random(7)
    firsts = Counter(
        claim_order(["critical", "default", "low"], (6, 3, 1), rng)[0] for _ in range(20_000)
    )
    assert firsts["critical"] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert firsts["default"] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert firsts["low"] / 20_000 == pytest.approx(0.1, abs=0.02)


def test_every_claim_order_lists_every_queue_once() -> None:
    rng = random.Random(3)
    for _ in range(200):
        assert sorted(claim_order(["a", "b", "c"], (1, 1000, 5), rng)) == ["a", "b", "c"]
