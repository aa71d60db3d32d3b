"""The Python client with the API's idempotency and uniqueness answers (no network): it keeps
sending its key in the body (the header is an equal spelling the API also takes), a 422
idempotency_conflict and a 409 duplicate_job raise Conflict naming the job, and neither is
retried (nothing was written; sending it again would answer the same)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from workstream.client import Client, RetryPolicy
from workstream.client.errors import Conflict

JOB_ID = "b" * 32


def refusal(status: int, code: str) -> httpx.Response:
    body = {"error": {"code": code, "message": "no", "field": "idempotency_key", "job_id": JOB_ID}}
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "code"), [(422, "idempotency_conflict"), (409, "duplicate_job")]
)
def test_a_refused_submit_raises_conflict_naming_the_job_and_is_sent_once(
    status: int, code: str
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return refusal(status, code)

    client = Client(
        "http://api.test",
        transport=httpx.MockTransport(answer),
        retry_policy=RetryPolicy(attempts=4),
    )
    with pytest.raises(Conflict) as caught:
        client.submit("echo", {"n": 1}, idempotency_key="order-1")
    assert (caught.value.status, caught.value.code, caught.value.job_id) == (status, code, JOB_ID)
    assert len(sent) == 1
    assert json.loads(sent[0].content)["idempotency_key"] == "order-1"


def test_submit_sends_unique_and_expiry_and_reads_them_back() -> None:
    sent: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        job = {"id": JOB_ID, "type": "echo", "queue": "default", "status": "pending"}
        return httpx.Response(
            201, json={**job, "unique_key": "nightly", "expires_at": "2026-12-03T18:00:00.000Z"}
        )

    client = Client("http://api.test", transport=httpx.MockTransport(answer))
    at = datetime(2026, 12, 3, 18, tzinfo=timezone.utc)
    job = client.submit("echo", {}, unique={"key": "nightly", "ttl": "10m"}, expires_at=at)
    client.submit("echo", {}, expires_in="10m")
    assert sent[0]["unique"] == {"key": "nightly", "ttl": "10m"}
    assert str(sent[0]["expires_at"]).startswith("2026-12-03T18:00:00")
    assert sent[1]["expires_in"] == "10m" and "unique" not in sent[1]
    assert (job.unique_key, job.expires_at) == ("nightly", at)
