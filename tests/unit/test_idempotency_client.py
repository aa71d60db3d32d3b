"""The Python client with the API's idempotency and uniqueness answers (no network): it keeps
sending its key in the body (the header is an equal spelling the API also takes), a 422
idempotency_conflict and a 409 duplicate_job raise Conflict naming the job, and neither is
retried (nothing was written; sending it again would answer the same)."""

from __future__ import annotations

import json

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
