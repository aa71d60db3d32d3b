"""Cancelling a processing job: 202 and cancel_requested; the run ends cancelled however it
stops (JobCancelled at a checkpoint, a return, an error, its timeout); a job that finished
first is not changed."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from workstream import JobCancelled
from workstream.common.errors import InvalidTransitionError
from workstream.common.jobs import CANCELLED_ERROR, ClaimedJob, JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.execution import Outcome, run_job, timed_out
from workstream.worker.fetcher import Fetcher
from workstream.worker.registry import CANCEL_CHECK_S, JobContext, handler

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


@handler("cancel_test_loop")
def loop_until_cancelled(payload: Any, ctx: JobContext) -> str:
    for _ in range(10_000):  # bounded: a checkpoint that never fires fails the test, not hangs
        ctx.heartbeat()
    return "never cancelled"


@handler("cancel_test_ignores")
def ignores_the_cancel(payload: Any, ctx: JobContext) -> str:
    return "done anyway"


def running(store: JobStore, job_type: str = "echo") -> ClaimedJob:
    store.enqueue(JobSpec(type=job_type))
    (claimed,) = store.claim("w1", 1, ["default"])
    return claimed


def test_cancel_of_a_processing_job_answers_202_and_records_the_request(
    client: TestClient, store: JobStore
) -> None:
    job = running(store)
    resp = client.simulate_post(f"/jobs/{job.id}/cancel")
    assert resp.status_code == 202
    assert resp.json["status"] == "processing" and resp.json["cancel_requested"] is True
    assert store.cancel_requested(job.id)
    again = client.simulate_post(f"/jobs/{job.id}/cancel")  # asking twice is asking once
    assert again.status_code == 202


def test_a_pending_job_is_still_cancelled_at_once(client: TestClient, store: JobStore) -> None:
    job_id = store.enqueue(JobSpec(type="echo")).job_id
    resp = client.simulate_post(f"/jobs/{job_id}/cancel")
    assert resp.status_code == 200 and resp.json["status"] == "cancelled"
    assert resp.json["cancel_requested"] is False


def test_a_handler_stops_at_its_checkpoint_and_the_job_ends_cancelled(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store, "cancel_test_loop")
    store.cancel(job.id)
    outcome = run_job(job, "w1", redis_client)
    assert outcome.error == CANCELLED_ERROR and not outcome.traceback
    assert store.fail("w1", job, outcome.error, permanent=outcome.permanent) is JobStatus.CANCELLED
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.CANCELLED
    assert ended.error == CANCELLED_ERROR and ended.cancel_requested is False
    assert ended.history is not None and ended.history[-1]["outcome"] == "cancelled"
    assert redis_client.llen(store.keys.processing("w1")) == 0
    assert redis_client.ttl(store.keys.job(job.id)) > 0  # kept RESULT_TTL like any cancelled job
    assert store.stats().get("cancelled|default|cancel_test_loop") == 1


def test_a_handler_that_returns_after_the_request_still_ends_cancelled(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store, "cancel_test_ignores")
    store.cancel(job.id)
    outcome = run_job(job, "w1", redis_client)
    store.complete("w1", job, outcome.result_json)
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.CANCELLED and ended.result is None
    assert ended.error == CANCELLED_ERROR  # complete.lua spells it too
    assert store.stats().get("completed|default|cancel_test_ignores") is None


def test_an_error_or_timeout_after_the_request_ends_cancelled_without_retry(
    store: JobStore,
) -> None:
    job = running(store)
    store.cancel(job.id)
    assert store.fail("w1", job, "RuntimeError: boom", permanent=False) is JobStatus.CANCELLED
    other = running(store)
    store.cancel(other.id)
    error = timed_out(other).error
    assert store.fail("w1", other, error, permanent=False) is JobStatus.CANCELLED


def test_a_job_that_finished_first_is_not_changed(client: TestClient, store: JobStore) -> None:
    job = running(store)
    store.complete("w1", job, '"ok"')
    resp = client.simulate_post(f"/jobs/{job.id}/cancel")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "invalid_transition"
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.COMPLETED and ended.result == "ok"
    assert not store.cancel_requested(job.id)


def test_ctx_cancelled_reads_the_request(store: JobStore, redis_client: redis.Redis) -> None:
    seen: list[bool] = []

    @handler("cancel_test_peek")
    def peek(payload: Any, ctx: JobContext) -> None:
        seen.append(ctx.cancelled)
        store.cancel(ctx.job_id)
        ctx._check.checked_at = float("-inf")  # past the rate limit, without sleeping
        seen.append(ctx.cancelled)
        with pytest.raises(JobCancelled):
            ctx.heartbeat()

    job = running(store, "cancel_test_peek")
    run_job(job, "w1", redis_client)
    assert seen == [False, True]


def test_cancel_requested_is_not_cancellable_again_once_ended(store: JobStore) -> None:
    job = running(store)
    store.cancel(job.id)
    store.fail("w1", job, CANCELLED_ERROR, permanent=True)
    with pytest.raises(InvalidTransitionError):
        store.cancel(job.id)


@pytest.mark.parametrize("answer", ["complete", "fail"])
def test_an_http_consumer_sees_the_cancel_in_extend_and_its_answer_ends_the_job_cancelled(
    client: TestClient, store: JobStore, answer: str
) -> None:
    job_id = store.enqueue(JobSpec(type="echo")).job_id
    leased = client.simulate_post(
        "/leases", json={"queues": ["default"], "consumer": "c1", "lease_s": 30}
    )
    (held,) = leased.json["leases"]
    token = held["lease"]

    def extend() -> Any:
        body = {"lease": token, "lease_s": 30}
        return client.simulate_post(f"/jobs/{job_id}/extend", json=body).json["cancel_requested"]

    assert extend() is False
    assert client.simulate_post(f"/jobs/{job_id}/cancel").status_code == 202
    assert extend() is True
    body = {"lease": token, "result": 1} if answer == "complete" else {"lease": token, "error": "x"}
    resp = client.simulate_post(f"/jobs/{job_id}/{answer}", json=body)
    assert resp.status_code == 200 and resp.json["status"] == "cancelled"
    assert store.get_status(job_id) is JobStatus.CANCELLED


def test_ctx_cancelled_in_a_tight_loop_asks_redis_at_most_every_check_interval(
    store: JobStore, redis_client: redis.Redis
) -> None:
    asked: list[str] = []

    class CountingRedis:
        def hget(self, key: str, field: str) -> str | None:
            asked.append(field)
            return None

    job = running(store)
    ctx = JobContext(
        job_id=job.id,
        job_type=job.type,
        queue=job.queue,
        attempt=1,
        max_attempts=3,
        worker_id="w1",
        timeout_s=5,
        redis=CountingRedis(),  # type: ignore[arg-type]
        log=logging.getLogger("test"),
        lease=job.lease,
        keys=store.keys,
    )
    started = time.monotonic()
    for _ in range(10_000):
        assert not ctx.cancelled
    elapsed = time.monotonic() - started
    assert len(asked) <= 1 + elapsed / CANCEL_CHECK_S


def test_complete_answers_cancelled_for_a_run_asked_to_stop_and_ok_otherwise(
    store: JobStore,
) -> None:
    asked, plain = running(store), running(store)
    store.cancel(asked.id)
    codes, _ = store.complete_many("w1", [(asked, "1"), (plain, "2")], 0, ())
    assert codes == ["cancelled", "ok"]
    codes, _ = store.complete_many("w1", [(asked, "1"), (plain, "2")], 0, ())  # a resend
    assert codes == ["cancelled", "ok"]


def test_the_fetcher_logs_job_cancelled_for_a_result_redis_ended_cancelled(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    job = running(store, "cancel_test_ignores")
    store.cancel(job.id)
    fetcher = Fetcher(store, None, "w1", ["default"], threading.Event())  # type: ignore[arg-type]
    fetcher.unrecorded = [(job, Outcome(True, result_json='"done anyway"'))]
    with caplog.at_level(logging.INFO, logger="worker.fetcher"):
        fetcher._record(0)
    events = [r.getMessage() for r in caplog.records if r.name == "worker.fetcher"]
    assert events == ["job.cancelled"]
