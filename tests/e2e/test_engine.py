"""The engine end to end: HTTP API, real worker processes, real Redis, real signals."""

from __future__ import annotations

import signal
import time
from typing import Any

import redis

from tests.support.stack import Api, Stack, wait_until
from workstream.common.serialization import rfc3339_to_ms

FAST_RECOVERY = {"WORKER_TTL": "1s", "SWEEPER_INTERVAL": "300ms"}


def _submit(api: Api, body: dict[str, Any], expected: int = 201) -> dict[str, Any]:
    status, job, _ = api.request("POST", "/jobs", body)
    assert status == expected, job
    return dict(job)


def _job(api: Api, job_id: str) -> dict[str, Any]:
    return dict(api.request("GET", f"/jobs/{job_id}")[1])


def _wait_status(api: Api, job_id: str, status: str, timeout_s: float = 20) -> dict[str, Any]:
    assert wait_until(lambda: _job(api, job_id)["status"] == status, timeout_s), _job(api, job_id)
    return _job(api, job_id)


def test_a_job_submitted_over_http_runs_on_a_worker_process(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker()
    created = _submit(api, {"type": "echo", "payload": {"n": 1}})
    status, job, _ = api.request("GET", f"/jobs/{created['id']}?wait=20")
    assert status == 200 and job["status"] == "completed"
    assert job["result"] == {"n": 1} and job["attempts"] == 1
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_a_flaky_job_retries_with_backoff_then_succeeds(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"RETRY_BACKOFF": "200ms"})
    created = _submit(api, {"type": "fail", "payload": {"times": 2}, "max_attempts": 3})
    job = _wait_status(api, created["id"], "completed")
    assert job["attempts"] == 3 and job["result"] == {"succeeded_on_attempt": 3}


def test_a_job_failing_every_attempt_ends_in_the_dead_letters(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"RETRY_BACKOFF": "10ms", "MAX_ATTEMPTS": "3"})
    created = _submit(api, {"type": "fail"})
    job = _wait_status(api, created["id"], "failed")
    assert job["attempts"] == 3 and "RuntimeError" in job["error"]
    assert api.request("GET", "/queues/default")[1]["failed"] == 1


def test_a_permanent_failure_is_not_retried(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker()
    created = _submit(api, {"type": "fail", "payload": {"permanent": True}, "max_attempts": 5})
    job = _wait_status(api, created["id"], "failed")
    assert job["attempts"] == 1 and job["error"].startswith("PermanentError")


def test_a_full_queue_answers_429_and_writes_nothing(
    stack: Stack, redis_client: redis.Redis
) -> None:
    api = stack.start_api({"JOB_QUEUE_CAPACITY": "2"})
    _submit(api, {"type": "echo"})
    _submit(api, {"type": "echo"})
    keys_before = redis_client.dbsize()
    status, body, headers = api.request("POST", "/jobs", {"type": "echo"})
    assert status == 429 and body["error"]["code"] == "queue_full"
    assert int(headers["retry-after"]) >= 1
    assert redis_client.dbsize() == keys_before


def test_a_repeated_idempotency_key_returns_the_original_job(stack: Stack) -> None:
    api = stack.start_api()
    first = _submit(api, {"type": "echo", "idempotency_key": "order-42"})
    again = _submit(api, {"type": "echo", "idempotency_key": "order-42"}, expected=200)
    assert again["id"] == first["id"]


def test_a_delayed_job_runs_no_earlier_than_due(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker()
    created = _submit(api, {"type": "echo", "delay": 1.0})
    assert created["status"] == "scheduled"
    job = _wait_status(api, created["id"], "completed")
    started_ms = rfc3339_to_ms(job["started_at"])
    assert started_ms - rfc3339_to_ms(job["created_at"]) >= 1000


def test_a_worker_serves_its_queues_in_priority_order(
    stack: Stack, redis_client: redis.Redis
) -> None:
    api = stack.start_api()
    for tag in ("low-1", "low-2"):
        _submit(api, {"type": "record_order", "payload": {"tag": tag}, "queue": "low"})
    for tag in ("high-1", "high-2"):
        _submit(api, {"type": "record_order", "payload": {"tag": tag}, "queue": "high"})
    stack.start_worker({"QUEUES": "high,low", "WORKER_COUNT": "1"})
    assert wait_until(lambda: redis_client.llen("test:order") == 4, 20)
    assert redis_client.lrange("test:order", 0, -1) == ["high-1", "high-2", "low-1", "low-2"]


def test_a_job_past_its_timeout_fails_and_the_worker_keeps_working(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"WORKER_COUNT": "1"})
    slow = _submit(api, {"type": "sleep", "payload": {"seconds": 30}, "timeout": 0.5,
                         "max_attempts": 1})  # fmt: skip
    job = _wait_status(api, slow["id"], "failed")
    assert job["error"] == "timed out after 0.5s"
    quick = _submit(api, {"type": "echo", "payload": "still alive"})
    assert _wait_status(api, quick["id"], "completed")["result"] == "still alive"


def test_sigterm_finishes_short_jobs_and_requeues_the_rest_without_an_attempt(
    stack: Stack,
) -> None:
    api = stack.start_api()
    worker = stack.start_worker({"SHUTDOWN_GRACE": "1s", "WORKER_COUNT": "2"})
    short = _submit(api, {"type": "sleep", "payload": {"seconds": 0.3}})
    long = _submit(api, {"type": "sleep", "payload": {"seconds": 30}})
    _wait_status(api, long["id"], "processing")
    _wait_status(api, short["id"], "processing", timeout_s=5)
    worker.signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(10) == 0
    assert time.monotonic() - started < 5
    assert _job(api, short["id"])["status"] == "completed"
    requeued = _job(api, long["id"])
    assert requeued["status"] == "pending" and requeued["attempts"] == 0
    assert api.request("GET", "/workers")[1]["workers"] == []


def test_a_sigkilled_worker_loses_none_of_its_jobs(stack: Stack, redis_client: redis.Redis) -> None:
    api = stack.start_api()
    doomed = stack.start_worker({**FAST_RECOVERY, "WORKER_COUNT": "5"})
    ids = [_submit(api, {"type": "count_runs", "payload": {"sleep": 2}})["id"] for _ in range(5)]
    assert wait_until(lambda: all(_job(api, i)["status"] == "processing" for i in ids), 20)
    doomed.signal(signal.SIGKILL)
    doomed.wait(5)
    stack.start_worker({**FAST_RECOVERY, "WORKER_COUNT": "5"})
    for job_id in ids:  # suspect now, they run one at a time
        job = _wait_status(api, job_id, "completed", timeout_s=30)
        # Five ran side by side, so none is blamed: each gets its attempt back.
        assert job["attempts"] == 1 and job["result"] == 1
    metrics = api.request("GET", "/metrics", headers={"Accept": "application/json"})[1]
    assert metrics["jobs_recovered"] == 5


def test_a_job_that_kills_its_worker_while_running_alone_uses_up_an_attempt(
    stack: Stack,
) -> None:
    api = stack.start_api()
    doomed = stack.start_worker({**FAST_RECOVERY, "WORKER_COUNT": "5"})
    job_id = _submit(api, {"type": "count_runs", "payload": {"sleep": 2}})["id"]
    assert wait_until(lambda: _job(api, job_id)["status"] == "processing", 20)
    doomed.signal(signal.SIGKILL)
    doomed.wait(5)
    stack.start_worker({**FAST_RECOVERY, "WORKER_COUNT": "5"})
    job = _wait_status(api, job_id, "completed", timeout_s=30)
    assert job["attempts"] == 2


def test_a_late_result_from_a_worker_presumed_dead_is_rejected_and_counted(
    stack: Stack, redis_client: redis.Redis
) -> None:
    api = stack.start_api()
    frozen = stack.start_worker({**FAST_RECOVERY, "WORKER_COUNT": "1"})
    job_id = _submit(api, {"type": "count_runs", "payload": {"sleep": 1.5}})["id"]
    _wait_status(api, job_id, "processing")
    frozen.signal(signal.SIGSTOP)  # alive but silent: its heartbeat stops
    try:
        stack.start_worker({**FAST_RECOVERY, "WORKER_COUNT": "1"})
        job = _wait_status(api, job_id, "completed", timeout_s=30)
    finally:
        frozen.signal(signal.SIGCONT)
    assert wait_until(
        lambda: (
            api.request("GET", "/metrics", headers={"Accept": "application/json"})[1][
                "stale_completions"
            ]
            == 1
        ),
        20,
    )
    assert _job(api, job_id)["result"] == job["result"] == 1  # the newer attempt's result
    assert redis_client.hget("test:runs", job_id) == "2"
