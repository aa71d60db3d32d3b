"""`http` jobs on real processes: the API refuses a bad URL, the worker reads
HTTP_JOB_ALLOWED_NETWORKS and WEBHOOK_SECRET from its environment, retries a 500, signs every
request, and fails a target forbidden by its own networks at once without contacting it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.test_http_job import Receiver, Reply, _verify, receiver_factory
from tests.support.stack import Stack

__all__ = ["receiver_factory"]  # the fixture, bound here so that pytest finds it

# The API is told a wider network than the worker, so that a target the API lets through is
# still judged by the worker on its own (the one that connects).
API_ENV = {"HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.0/8"}
WORKER_ENV = {
    "HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.1/32",
    "WEBHOOK_SECRET": "s3cret",
    "RETRY_BACKOFF": "0s",
}


def _finished(api: Any, job_id: str) -> dict[str, Any]:
    for _ in range(6):  # each answer waits up to 5 s for the job to end
        status, job, _ = api.request("GET", f"/jobs/{job_id}?wait=5", timeout_s=15)
        assert status == 200
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_http_jobs_through_the_api_and_a_worker_process(
    stack: Stack, receiver_factory: Callable[..., Receiver]
) -> None:
    api = stack.start_api(API_ENV)
    stack.start_worker(WORKER_ENV)
    receiver = receiver_factory(Reply(500, b"oops"), Reply(200, b"thanks"))
    forbidden = receiver_factory(host="127.0.0.2")

    status, body, _ = api.request("POST", "/jobs", {"type": "http", "payload": {"url": "ftp://x/"}})
    assert (status, body["error"]["code"]) == (400, "invalid_url")

    status, delivered, _ = api.request(
        "POST", "/jobs", {"type": "http", "payload": {"url": receiver.url(), "body": {"n": 1}}}
    )
    assert status == 201
    status, refused, _ = api.request(
        "POST", "/jobs", {"type": "http", "payload": {"url": forbidden.url()}}
    )
    assert status == 201  # allowed by the API's networks, not by the worker's

    job = _finished(api, delivered["id"])
    assert (job["status"], job["attempts"], job["result"]["body"]) == ("completed", 2, "thanks")
    assert [seen.headers["workstream-attempt"] for seen in receiver.seen] == ["1", "2"]
    assert all(
        _verify("s3cret", seen.headers["workstream-signature"], seen.body) for seen in receiver.seen
    )

    job = _finished(api, refused["id"])
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert "target_forbidden: 127.0.0.2 is loopback" in job["error"]
    assert forbidden.seen == []


def test_the_api_refuses_a_forbidden_literal_address_at_submission(stack: Stack) -> None:
    api = stack.start_api()
    status, body, _ = api.request(
        "POST", "/jobs", {"type": "http", "payload": {"url": "http://127.0.0.2:9/"}}
    )
    assert (status, body["error"]["code"]) == (400, "target_forbidden")
