"""ctx.progress(value, message): a small bounded JSON on the job, shown by GET /jobs/{id},
written only under the run's lease, and a cancel checkpoint."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from workstream import JobCancelled
from workstream.common.jobs import MAX_PROGRESS_BYTES, ClaimedJob, JobSpec
from workstream.common.store import JobStore
from workstream.worker.execution import run_job
from workstream.worker.registry import JobContext, handler

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


@handler("progress_test_report")
def report(payload: Any, ctx: JobContext) -> None:
    ctx.progress(payload["value"], payload.get("message"))


def running(store: JobStore, job_type: str, payload: Any = None) -> ClaimedJob:
    store.enqueue(JobSpec(type=job_type, payload=payload))
    (claimed,) = store.claim("w1", 1, ["default"])
    return claimed


def test_progress_is_shown_by_get_while_the_job_runs(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    seen: list[Any] = []

    @handler("progress_test_read")
    def report_then_read(payload: Any, ctx: JobContext) -> None:
        ctx.progress(3, "of 10 files")
        seen.append(client.simulate_get(f"/jobs/{ctx.job_id}").json["progress"])

    job = running(store, "progress_test_read")
    assert client.simulate_get(f"/jobs/{job.id}").json["progress"] is None
    run_job(job, "w1", redis_client)
    assert seen == [{"value": 3, "message": "of 10 files"}]


def test_the_last_progress_stays_on_the_finished_job(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store, "progress_test_report", {"value": 0.5})
    outcome = run_job(job, "w1", redis_client)
    store.complete("w1", job, outcome.result_json)
    body = client.simulate_get(f"/jobs/{job.id}").json
    assert body["status"] == "completed"
    assert body["progress"] == {"value": 0.5, "message": None}


def test_progress_over_the_bound_is_refused_and_not_stored(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store, "progress_test_report", {"value": "x" * MAX_PROGRESS_BYTES})
    outcome = run_job(job, "w1", redis_client)
    assert not outcome.ok and "ValueError" in outcome.error
    assert redis_client.hget(store.keys.job(job.id), "progress") is None


def test_progress_from_a_run_that_lost_its_lease_writes_nothing(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store, "echo")
    store.complete("w1", job, "null")
    assert store.progress(job.id, job.lease, '{"value": 1}') is None
    redis_client.delete(store.keys.job(job.id))
    assert store.progress(job.id, job.lease, '{"value": 1}') is None
    assert not redis_client.exists(store.keys.job(job.id))  # never recreated


def test_progress_is_a_cancel_checkpoint(store: JobStore, redis_client: redis.Redis) -> None:
    raised: list[bool] = []

    @handler("progress_test_cancelled")
    def cancelled_then_report(payload: Any, ctx: JobContext) -> None:
        store.cancel(ctx.job_id)
        with pytest.raises(JobCancelled):
            ctx.progress(1)  # no wait for the cancel check's rate limit: the reply says so
        raised.append(True)

    job = running(store, "progress_test_cancelled")
    run_job(job, "w1", redis_client)
    assert raised == [True]
    assert store.get_job(job.id).progress == {"value": 1, "message": None}  # type: ignore[union-attr]
