"""Retry-After for a full queue from its recent drain rate (api.drain), bounded to 1..60 s."""

from __future__ import annotations

import redis

from workstream.api.drain import DrainRate, finished_per_queue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drain(stats: dict[str, int], clock: Clock) -> DrainRate:
    return DrainRate(lambda: dict(stats), clock)


def test_finished_jobs_are_summed_per_queue_over_types_and_outcomes() -> None:
    stats = {"completed|a|echo": 3, "failed|a|mail": 2, "completed|b|echo": 1, "created|a|echo": 9}
    assert finished_per_queue(stats) == {"a": 5, "b": 1}


def test_the_first_429_without_history_gets_a_middling_wait() -> None:
    assert _drain({}, Clock()).retry_after("a", 1) == 5


def test_a_queue_finishing_ten_jobs_a_second_makes_room_for_one_job_in_a_second() -> None:
    stats, clock = {"completed|a|echo": 0}, Clock()
    drain = _drain(stats, clock)
    drain.retry_after("a", 1)
    clock.now += 2
    stats["completed|a|echo"] = 20
    assert drain.retry_after("a", 1) == 1
    assert drain.retry_after("a", 100) == 10


def test_a_queue_that_does_not_drain_waits_the_longest() -> None:
    stats, clock = {"completed|a|echo": 7}, Clock()
    drain = _drain(stats, clock)
    drain.retry_after("a", 1)
    clock.now += 2
    assert drain.retry_after("a", 1) == 60


def test_a_slow_queue_is_capped_at_sixty_seconds() -> None:
    stats, clock = {"completed|a|echo": 0}, Clock()
    drain = _drain(stats, clock)
    drain.retry_after("a", 1)
    clock.now += 10
    stats["completed|a|echo"] = 1
    assert drain.retry_after("a", 1000) == 60


def test_the_stats_hash_is_read_at_most_once_a_second() -> None:
    reads = []

    def read() -> dict[str, int]:
        reads.append(1)
        return {}

    drain = DrainRate(read, Clock())
    for _ in range(50):
        drain.retry_after("a", 1)
    assert len(reads) == 1


def test_history_older_than_the_window_is_forgotten() -> None:
    stats, clock = {"completed|a|echo": 0}, Clock()
    drain = _drain(stats, clock)
    drain.retry_after("a", 1)
    clock.now += 3600
    stats["completed|a|echo"] = 3600
    assert drain.retry_after("a", 1) == 5  # an hour's average says nothing about now


def test_redis_failing_while_measuring_still_gives_an_answer() -> None:
    def broken() -> dict[str, int]:
        raise redis.exceptions.ConnectionError("gone")

    assert DrainRate(broken, Clock()).retry_after("a", 1) == 5
