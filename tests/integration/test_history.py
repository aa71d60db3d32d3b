"""The attempt history: every ended attempt, kept with the job by the script that ended it,
bounded, shown by GET /jobs/{id} and left out of listings."""

from __future__ import annotations

import threading
from typing import Any

import falcon.testing
import redis

from tests.conftest import make_settings
from tests.integration import api_fixtures
from tests.integration.api_fixtures import submit
from tests.support.redis_server import RedisServer
from workstream.common.jobs import HISTORY_MAX_BYTES, HISTORY_MAX_ENTRIES, JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.registry import JobContext, handler
from workstream.worker.worker import Worker

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


@handler("history_lookup")
def lookup_missing(payload: Any, ctx: JobContext) -> Any:
    """Fails with KeyError until the attempt named in the payload, then succeeds."""
    d: dict[str, int] = {"ok": 1}
    return d["ok" if ctx.attempt >= payload["succeed_on"] else "missing"]


def _drain(server: RedisServer, client: redis.Redis, **env: str) -> Worker:
    settings = make_settings(server.url, RETRY_BACKOFF="0s", **env)
    worker = Worker(settings, JobStore(client, settings), worker_id="w-history")
    done = threading.Event()

    def run() -> None:
        worker.run(until_idle=True)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(30):
        worker.shutdown_requested.set()
        done.wait(10)
        raise AssertionError("worker did not drain in time")
    return worker


def test_get_job_shows_each_failed_attempt_with_its_traceback_then_the_completed_one(
    redis_server: RedisServer, redis_client: redis.Redis, store: JobStore, client: TestClient
) -> None:
    job_id = submit(store, type="history_lookup", payload={"succeed_on": 3}, max_attempts=3)
    _drain(redis_server, redis_client)
    history = client.simulate_get(f"/jobs/{job_id}").json["history"]
    assert [(e["attempt"], e["outcome"]) for e in history] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    for entry in history[:2]:
        assert entry["error"] == "KeyError: 'missing'"
        assert 'return d["ok" if ctx.attempt' in entry["traceback"]
        assert entry["worker"] == "w-history"
        assert entry["started_at"] <= entry["ended_at"]
    assert history[2]["error"] is None and history[2]["traceback"] is None
    assert history[2]["worker"] == "w-history" and history[2]["ended_at"] is not None


def test_a_timed_out_attempt_is_recorded_as_timed_out(
    redis_server: RedisServer, redis_client: redis.Redis, store: JobStore
) -> None:
    job_id = submit(store, type="sleep", payload={"seconds": 30}, timeout=0.2, max_attempts=1)
    _drain(redis_server, redis_client)
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert [(e["outcome"], e["error"]) for e in job.history] == [
        ("timed_out", "timed out after 0.2s")
    ]


def test_a_reclaimed_attempt_is_recorded_as_lost(store: JobStore) -> None:
    job_id = submit(store, max_attempts=2)
    assert len(store.claim("w1", 1, ["default"])) == 1
    store.redis.zadd(store.keys.deadlines, {job_id: 0})  # far past its deadline
    assert store.reclaim(margin_ms=0) == 1
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    (entry,) = job.history
    assert (entry["attempt"], entry["worker"], entry["outcome"]) == (1, "w1", "lost")
    assert "reclaimed" in entry["error"] and entry["started_at"] is not None


def test_a_dead_workers_attempt_is_recorded_as_lost(store: JobStore) -> None:
    job_id = submit(store, max_attempts=2)
    store.claim("w1", 1, ["default"])
    store.heartbeat("w1", "h", 1, ["default"], 1, 1)
    assert store.recover("w1") == (1, 0)
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert [(e["attempt"], e["worker"], e["outcome"]) for e in job.history] == [(1, "w1", "lost")]
    assert job.history[0]["error"] == "worker w1 died while running the job"


def test_history_keeps_only_the_latest_attempts(store: JobStore) -> None:
    job_id = submit(store, max_attempts=40)
    for attempt in range(1, 31):
        (claimed,) = store.claim("w1", 1, ["default"])
        store.fail("w1", claimed, f"boom {attempt}", permanent=False)
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert len(job.history) == HISTORY_MAX_ENTRIES
    assert [e["attempt"] for e in job.history] == list(range(6, 31))
    raw = str(store.redis.hget(store.keys.job(job_id), "history"))
    assert raw.count('"outcome"') == HISTORY_MAX_ENTRIES


def _fail_repeatedly(store: JobStore, times: int, error: str, traceback: str) -> str:
    job_id = submit(store, max_attempts=times + 1)
    for _ in range(times):
        (claimed,) = store.claim("w1", 1, ["default"])
        store.fail("w1", claimed, error, permanent=False, traceback=traceback)
    return job_id


def _stored_history(store: JobStore, job_id: str) -> str:
    return str(store.redis.hget(store.keys.job(job_id), "history"))


def test_history_size_is_bounded_the_oldest_tracebacks_going_first(store: JobStore) -> None:
    job_id = _fail_repeatedly(store, 5, "boom", "t" * 7000)
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    kept = [e["traceback"] is not None for e in job.history]
    assert kept == [False, False, False, True, True]  # 2 x 7,000 bytes fit in 16 KiB
    assert len(_stored_history(store, job_id)) <= HISTORY_MAX_BYTES


def test_history_size_is_bounded_the_oldest_entries_going_when_errors_alone_are_too_big(
    store: JobStore,
) -> None:
    job_id = _fail_repeatedly(store, 10, "e" * 4000, "")
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert [e["attempt"] for e in job.history] == [8, 9, 10]  # 4 x (4,000 + fields) > 16 KiB
    assert len(_stored_history(store, job_id)) <= HISTORY_MAX_BYTES


def test_the_newest_attempt_is_kept_whole_even_past_the_size_bound(store: JobStore) -> None:
    job_id = _fail_repeatedly(store, 3, "e" * 4000, "t" * 8000)
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert job.history[-1]["traceback"] == "t" * 8000 and job.history[-1]["attempt"] == 3


def test_a_resent_failure_adds_no_second_entry(store: JobStore) -> None:
    job_id = submit(store, max_attempts=1)
    (claimed,) = store.claim("w1", 1, ["default"])
    store.fail("w1", claimed, "boom", permanent=False)
    assert store.fail("w1", claimed, "boom", permanent=False) is JobStatus.FAILED
    job = store.get_job(job_id)
    assert job is not None and job.history is not None and len(job.history) == 1


def test_a_history_a_hand_edit_broke_is_replaced_and_the_failure_recorded(
    store: JobStore,
) -> None:
    job_id = submit(store, max_attempts=1)
    (claimed,) = store.claim("w1", 1, ["default"])
    store.redis.hset(store.keys.job(job_id), "history", "[1, {not json")
    assert store.fail("w1", claimed, "boom", permanent=False) is JobStatus.FAILED
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert [e["outcome"] for e in job.history] == ["failed"]


def test_listings_leave_the_history_out_and_a_submitted_job_starts_with_none(
    client: TestClient, store: JobStore
) -> None:
    created = client.simulate_post("/jobs", json={"type": "echo"}).json
    assert created["history"] == []
    (listed,) = client.simulate_get("/jobs").json["jobs"]
    assert listed["id"] == created["id"] and "history" not in listed


def test_an_operator_retry_keeps_the_earlier_attempts(store: JobStore) -> None:
    job_id = store.enqueue(JobSpec(type="echo", max_attempts=1)).job_id
    (claimed,) = store.claim("w1", 1, ["default"])
    store.fail("w1", claimed, "boom", permanent=True)
    store.retry(job_id)
    (claimed,) = store.claim("w2", 1, ["default"])
    store.complete("w2", claimed, "1")
    job = store.get_job(job_id)
    assert job is not None and job.history is not None
    assert [(e["worker"], e["outcome"]) for e in job.history] == [
        ("w1", "failed"),
        ("w2", "completed"),
    ]
