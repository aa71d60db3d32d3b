"""Idempotency, unique jobs and expiry on real processes: two API processes share the keys and
locks through Redis, a worker runs the job, and an expired job is cancelled and never run."""

from __future__ import annotations

import time
from typing import Any

import redis

from tests.support.stack import Api, Stack, wait_until

JOB = {"type": "count_runs", "payload": {"sleep": 0.5}, "unique": {"key": "nightly"}}


def job_status(api: Api, job_id: str) -> str:
    status, body, _ = api.request("GET", f"/jobs/{job_id}")
    assert status == 200, body
    return str(body["status"])


def post(api: Api, body: dict[str, Any], key: str) -> tuple[int, Any]:
    status, reply, _ = api.request("POST", "/jobs", body, headers={"Idempotency-Key": key})
    return status, reply


def test_replay_conflict_and_duplicate_across_api_processes_while_the_job_runs(
    stack: Stack,
) -> None:
    first_api, second_api = stack.start_api(), stack.start_api()
    stack.start_worker()
    status, created = post(first_api, JOB, "k-1")
    assert status == 201
    job_id = created["id"]
    status, replayed = post(second_api, JOB, "k-1")
    assert (status, replayed["id"]) == (200, job_id)
    status, conflict = post(second_api, {**JOB, "payload": {"sleep": 0.1}}, "k-1")
    assert (status, conflict["error"]["code"], conflict["error"]["job_id"]) == (
        422,
        "idempotency_conflict",
        job_id,
    )
    assert wait_until(lambda: job_status(second_api, job_id) == "processing", 10)
    status, duplicate = post(second_api, JOB, "k-2")  # a new request, the same unique key
    assert (status, duplicate["error"]["code"], duplicate["error"]["job_id"]) == (
        409,
        "duplicate_job",
        job_id,
    )
    assert wait_until(lambda: job_status(first_api, job_id) == "completed", 10)
    status, after = post(first_api, JOB, "k-3")
    assert status == 201 and after["id"] != job_id


def test_an_expired_job_is_cancelled_and_never_run(stack: Stack, redis_client: redis.Redis) -> None:
    api = stack.start_api()
    status, job, _ = api.request(
        "POST", "/jobs", {"type": "count_runs", "payload": {}, "expires_in": 0.2}
    )
    assert status == 201
    time.sleep(0.3)  # expired before any worker exists
    stack.start_worker()
    assert wait_until(lambda: job_status(api, job["id"]) == "cancelled", 15)
    _, body, _ = api.request("GET", f"/jobs/{job['id']}")
    assert (body["error"], body["attempts"], body["started_at"]) == ("expired", 0, None)
    assert redis_client.hget("test:runs", job["id"]) is None
