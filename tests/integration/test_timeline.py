"""/stats/timeline: per-minute throughput and latency from snapshots kept in Redis, bounded in
size and in keys, counted from real completions."""

from __future__ import annotations

import logging
import threading
import time

import falcon.testing
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.integration import api_fixtures
from tests.integration.api_fixtures import free_port, make_completed, make_failed
from tests.support.stack import wait_until
from workstream.common import timeline
from workstream.common.store import JobStore
from workstream.common.timeline import MINUTE_MS, Sampler, Snapshot

# The shared API fixtures, bound here so that pytest finds them for this module.
app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def get_timeline(client: TestClient, query: str = "") -> falcon.testing.Result:
    return client.simulate_get("/stats/timeline", query_string=query)


def baseline(store: JobStore, seconds_ago: int) -> None:
    """A snapshot of the (still empty) stats as if the sampler had taken it a while ago."""
    write = timeline.write(
        store, Snapshot.from_stats({}, store.server_time_ms() - seconds_ago * 1000)
    )
    assert write


def history(store: JobStore, minutes: int, per_minute: int) -> int:
    """A snapshot at the start of each of the last `minutes` minutes and of this one (so that a
    minute turning before the read leaves no hole), `per_minute` more completions each; returns
    the first minute."""
    first = store.server_time_ms() // MINUTE_MS - minutes
    for n in range(minutes + 1):
        stats = {"completed|default|echo": n * per_minute}
        timeline.write(store, Snapshot.from_stats(stats, (first + n) * MINUTE_MS))
    store.redis.hset(store.keys.stats, "completed|default|echo", (minutes + 1) * per_minute)
    return first


def test_timeline_counts_the_jobs_completed_and_failed_since_the_last_snapshot(
    client: TestClient, store: JobStore
) -> None:
    baseline(store, seconds_ago=30)
    for _ in range(3):
        make_completed(store)
    make_failed(store)

    points = get_timeline(client).json["points"]

    assert sum(p["completed"] for p in points) == 3
    assert sum(p["failed"] for p in points) == 1
    assert sum(p["run_seconds"]["count"] for p in points) == 4
    newest = points[-1]
    assert newest["completed_per_s"] == pytest.approx(3 / newest["seconds"], rel=1e-3)
    assert newest["run_seconds"]["p50"] is not None


def test_timeline_answers_one_point_per_minute_for_the_minutes_asked_and_no_more(
    client: TestClient, store: JobStore
) -> None:
    history(store, minutes=90, per_minute=6)

    for minutes in (1, 15, 60):
        points = get_timeline(client, f"minutes={minutes}").json["points"]
        assert minutes <= len(points) <= minutes + 1, (minutes, len(points))
        assert all(p["completed"] == 6 for p in points[:-1])  # the last one ends now
        assert all(p["completed_per_s"] == pytest.approx(0.1) for p in points[:-1])


def test_timeline_defaults_to_15_minutes(client: TestClient, store: JobStore) -> None:
    history(store, minutes=30, per_minute=1)

    body = get_timeline(client).json

    assert body["minutes"] == 15 and body["interval_s"] == 60
    assert 15 <= len(body["points"]) <= 16


@pytest.mark.parametrize("minutes", ["0", "61", "-1", "ten", "1.5", "1000000"])
def test_timeline_refuses_a_window_outside_one_to_sixty_minutes(
    client: TestClient, minutes: str
) -> None:
    resp = get_timeline(client, f"minutes={minutes}")

    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "validation_error"
    assert "minutes" in resp.json["error"]["message"]


def test_every_snapshot_expires_within_the_hour_and_a_bit(store: JobStore) -> None:
    first = history(store, minutes=3, per_minute=1)
    timeline.record(store)

    keys = store.redis.keys(store.keys.timeline(0).removesuffix("0") + "*")
    assert len(keys) in (4, 5)  # 5: a minute turned before record()
    for key in keys:
        assert 0 < store.redis.ttl(key) <= timeline.SNAPSHOT_TTL_S <= 63 * 60
    assert store.redis.exists(store.keys.timeline(first))


def test_a_reader_writes_the_minutes_snapshot_when_no_sampler_has(
    client: TestClient, store: JobStore
) -> None:
    get_timeline(client)

    minute = store.server_time_ms() // MINUTE_MS
    assert store.redis.exists(store.keys.timeline(minute)) or store.redis.exists(
        store.keys.timeline(minute - 1)  # the request ran in the minute before
    )


def test_a_stretch_over_which_a_counter_fell_is_left_out(
    client: TestClient, store: JobStore
) -> None:
    # A snapshot that counted completions of a queue since deleted (its counters gone now).
    at_ms = store.server_time_ms() - 30_000
    timeline.write(store, Snapshot.from_stats({"completed|gone|echo": 5}, at_ms))

    assert get_timeline(client).json["points"] == []


def test_sampler_processes_write_one_snapshot_per_minute_between_them(store: JobStore) -> None:
    stopping = threading.Event()
    samplers = [Sampler(store, stopping) for _ in range(3)]
    make_completed(store)

    for sampler in samplers:
        sampler.tick()
    first = {key: store.redis.get(key) for key in store.redis.keys("*timeline:*")}
    make_completed(store)
    for sampler in samplers:
        sampler.tick()

    after = {key: store.redis.get(key) for key in store.redis.keys("*timeline:*")}
    assert len(first) == 1 and (after == first or len(after) == 2)  # or a minute turned
    (text,) = first.values()
    snapshot = Snapshot.from_text(str(text))
    assert snapshot is not None and snapshot.counters["completed"] == 1


def test_timeline_stored_as_written_by_other_code_is_skipped_not_an_error(
    client: TestClient, store: JobStore
) -> None:
    minute = store.server_time_ms() // MINUTE_MS
    store.redis.set(store.keys.timeline(minute - 1), "not json")

    resp = get_timeline(client)

    assert resp.status_code == 200 and resp.json["points"] == []


def test_a_sampler_logs_an_outage_once_and_keeps_running_until_stopped(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    down = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0), decode_responses=True)
    stopping = threading.Event()
    sampler = Sampler(JobStore(down, store.settings), stopping, interval_s=0.01)

    with caplog.at_level(logging.WARNING, logger="workstream.common.timeline"):
        sampler.start()
        assert wait_until(lambda: failures(caplog) >= 1, 5)
        time.sleep(0.3)  # many more failing ticks
        assert sampler.alive
        stopping.set()
        assert wait_until(lambda: not sampler.alive, 5)

    assert failures(caplog) == 1


def failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage() == "timeline.sample_failed" for r in caplog.records)
