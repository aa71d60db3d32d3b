"""The client's retry and error rules against a scripted transport (no network): which
failures are retried, how long it pauses, and that a replayed submit is the same submit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from tests.support import aio
from workstream.client import AsyncClient, Client, RetryPolicy
from workstream.client.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    QueueFull,
    TransportError,
    Unavailable,
)

JOB = {"id": "a" * 32, "type": "echo", "queue": "default", "status": "pending"}
Answer = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"code": code, "message": f"{code} happened"}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Answers requests in order; an exception in the list is raised instead of answering."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(request.content) for request in self.requests]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr("workstream.client.sync.time.sleep", recorded.append)
    return recorded


def client(script: Script, attempts: int = 4) -> Client:
    policy = RetryPolicy(attempts=attempts, backoff=0.5, max_pause=10)
    return Client("http://api.test", transport=httpx.MockTransport(script), retry_policy=policy)


def test_503_is_retried_after_the_pause_retry_after_asks(sleeps: list[float]) -> None:
    script = Script(error(503, "redis_unavailable", "5"), httpx.Response(200, json=JOB))
    assert client(script).get(JOB["id"]).status == "pending"
    assert sleeps == [5.0]


def test_503_without_retry_after_backs_off_doubling(sleeps: list[float]) -> None:
    script = Script(*[error(503, "redis_unavailable")] * 3, httpx.Response(200, json=JOB))
    client(script).get(JOB["id"])
    assert sleeps == [0.5, 1.0, 2.0]


def test_a_long_retry_after_is_capped_by_the_policy(sleeps: list[float]) -> None:
    script = Script(error(503, "redis_unavailable", "3600"), httpx.Response(200, json=JOB))
    client(script).get(JOB["id"])
    assert sleeps == [10.0]


def test_retries_are_bounded_and_the_last_error_is_raised(sleeps: list[float]) -> None:
    script = Script(*[error(503, "redis_unavailable", "1")] * 3)
    with pytest.raises(Unavailable) as caught:
        client(script, attempts=3).queues()
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "redis_unavailable",
        1.0,
    )
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (error(400, "validation_error"), InvalidRequest),
        (error(409, "invalid_transition"), Conflict),
        (error(403, "insufficient_scope"), Forbidden),
        (error(429, "queue_full", "1"), QueueFull),
    ],
)
def test_other_errors_are_raised_at_once_as_their_family(
    answer: httpx.Response, kind: type[Exception], sleeps: list[float]
) -> None:
    script = Script(answer)
    with pytest.raises(kind):
        client(script).cancel(JOB["id"])
    assert (len(script.requests), sleeps) == (1, [])


def test_a_submit_whose_answer_was_lost_is_replayed_with_the_same_idempotency_key(
    sleeps: list[float],
) -> None:
    script = Script(httpx.ReadError("connection reset"), httpx.Response(201, json=JOB))
    client(script).submit("echo", {"n": 1})
    first, second = script.bodies()
    assert first == second
    assert str(first["idempotency_key"]).startswith("ws-")


def test_each_submit_gets_its_own_idempotency_key() -> None:
    script = Script(httpx.Response(201, json=JOB), httpx.Response(201, json=JOB))
    api = client(script)
    api.submit("echo", {})
    api.submit("echo", {})
    keys = {body["idempotency_key"] for body in script.bodies()}
    assert len(keys) == 2


def test_a_given_idempotency_key_is_sent_as_given() -> None:
    script = Script(httpx.Response(201, json=JOB))
    client(script).submit("echo", {}, idempotency_key="order-42")
    assert script.bodies()[0]["idempotency_key"] == "order-42"


def test_submit_many_gives_every_job_a_key(sleeps: list[float]) -> None:
    answer = {"jobs": [{"id": "b" * 32, "status": "pending", "created": True}] * 2}
    script = Script(httpx.ReadError("reset"), httpx.Response(201, json=answer))
    submitted = client(script).submit_many([{"type": "echo"}, {"type": "echo"}])
    assert [s.created for s in submitted] == [True, True]
    first, second = script.bodies()
    assert first == second
    assert all(job["idempotency_key"] for job in first["jobs"])  # type: ignore[attr-defined]


def test_a_cancel_whose_answer_was_lost_is_not_sent_again(sleeps: list[float]) -> None:
    script = Script(httpx.ReadError("connection reset"), httpx.Response(200, json=JOB))
    with pytest.raises(TransportError):
        client(script).cancel(JOB["id"])
    assert len(script.requests) == 1


def test_a_cancel_that_never_connected_is_sent_again(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=JOB))
    assert client(script).cancel(JOB["id"]).id == JOB["id"]
    assert len(script.requests) == 2


def test_health_reports_degraded_redis_without_raising() -> None:
    script = Script(httpx.Response(503, json={"status": "degraded", "redis": "unavailable"}))
    health = client(script).health()
    assert (health.ok, health.redis, len(script.requests)) == (False, "unavailable", 1)


def test_the_token_is_sent_as_a_bearer_header() -> None:
    script = Script(httpx.Response(200, json={"queues": []}))
    transport = httpx.MockTransport(script)
    Client("http://api.test", token="s3cret", transport=transport).queues()
    assert script.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_a_naive_run_at_is_refused_before_sending() -> None:
    script = Script()
    with pytest.raises(ValueError, match="timezone-aware"):
        client(script).submit("echo", {}, run_at=datetime(2030, 1, 1, 12, 0))
    assert script.requests == []


def test_a_non_http_url_is_refused() -> None:
    with pytest.raises(ValueError):
        Client("localhost:8080")


def test_job_fields_a_server_does_not_send_read_as_empty() -> None:
    script = Script(httpx.Response(200, json={"id": "a" * 32, "status": "failed"}))
    job = client(script).get("a" * 32)
    assert (job.history, job.created_at, job.finished) == ((), None, True)


def test_async_client_retries_like_the_blocking_one(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(error(503, "redis_unavailable", "0"), httpx.Response(200, json=JOB))

    async def scenario() -> str:
        transport = httpx.MockTransport(script)
        async with AsyncClient("http://api.test", transport=transport) as api:
            return (await api.get(JOB["id"])).status

    assert aio.run(scenario()) == "pending"
    assert len(script.requests) == 2


def test_wait_asks_the_api_for_at_most_60_seconds_a_step(sleeps: list[float]) -> None:
    unfinished = {**JOB, "status": "processing"}
    done = {**JOB, "status": "completed"}
    answers = [httpx.Response(200, json=unfinished)] * 2 + [httpx.Response(200, json=done)]
    script = Script(*answers)
    assert client(script).wait(JOB["id"], timeout=90).status == "completed"
    assert [r.url.params["wait"] for r in script.requests] == ["60", "60", "60"]
    # Answers that come back early and unfinished (the API had no waiting slot free) are
    # asked again after a short pause, not in a tight loop.
    assert sleeps == [0.5]


def test_a_long_poll_read_timeout_outlives_the_server_wait() -> None:
    script = Script(httpx.Response(200, json={**JOB, "status": "completed"}))
    client(script).wait(JOB["id"], timeout=20)
    assert script.requests[0].extensions["timeout"]["read"] == 35.0  # 20 s + 15 s slack
