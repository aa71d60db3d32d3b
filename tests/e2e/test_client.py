"""workstream.Client and AsyncClient against real processes: one workstream-api and one
workstream-worker (serving queue `default` only) on the session's private redis-server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import redis

from tests.support import aio
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import Api, Stack, wait_until
from workstream import AsyncClient, Client
from workstream.client import JobRequest, RetryPolicy
from workstream.client.errors import Conflict, NotFound, TransportError, Unauthorized

NAMESPACE = f"client-{uuid.uuid4().hex[:8]}"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.05, max_pause=0.5)


@pytest.fixture
def stack(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        redis_server.url,
        tmp_path / "logs",
        env={"NAMESPACE": NAMESPACE, "SHUTDOWN_GRACE": "2s", "RETRY_BACKOFF": "0s"},
    )
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def api(stack: Stack) -> Api:
    worker = stack.start_worker()
    api = stack.start_api()
    registered = wait_until(lambda: bool(api.request("GET", "/workers")[1]["workers"]), 20)
    assert registered, worker.log()[-2000:]
    return api


@pytest.fixture
def client(api: Api) -> Iterator[Client]:
    with Client(api.url, retry_policy=FAST_RETRY) as client:
        yield client


def test_submitted_job_is_waited_for_until_it_completes(client: Client) -> None:
    job = client.submit("echo", {"hello": "client"})
    assert job.status in ("pending", "processing", "completed")
    done = client.wait(job.id, timeout=20)
    assert (done.status, done.finished, done.result) == ("completed", True, {"hello": "client"})
    assert done.finished_at is not None and done.finished_at.tzinfo is not None


def test_every_submit_carries_an_idempotency_key(client: Client) -> None:
    job = client.submit("echo", {}, queue="idle")
    assert job.idempotency_key and job.idempotency_key.startswith("ws-")


def test_the_same_idempotency_key_returns_the_original_job(client: Client) -> None:
    first = client.submit("echo", {"n": 1}, queue="idle", idempotency_key="order-42")
    again = client.submit("echo", {"n": 1}, queue="idle", idempotency_key="order-42")
    assert again.id == first.id
    assert client.queue("idle").pending == 1


class LosesFirstAnswer(httpx.HTTPTransport):
    """Sends every request to the API for real, but throws the first answer away as a broken
    connection would: the API acted, the client cannot know it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        response = super().handle_request(request)
        if self.sent == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the request was sent")
        return response


def test_a_submit_whose_answer_is_lost_is_retried_without_creating_a_second_job(
    api: Api,
) -> None:
    transport = LosesFirstAnswer()
    with Client(api.url, retry_policy=FAST_RETRY, transport=transport) as client:
        job = client.submit("echo", {"once": True}, queue="idle")
        assert transport.sent == 2
        assert [j.id for j in client.list_jobs(queue="idle").jobs] == [job.id]


def test_wait_returns_the_unfinished_job_when_time_runs_out(client: Client) -> None:
    job = client.submit("echo", {}, queue="idle")  # no worker serves "idle"
    waited = client.wait(job.id, timeout=1)
    assert (waited.status, waited.finished) == ("pending", False)


def test_unknown_job_raises_not_found_with_the_api_code(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        client.get(uuid.uuid4().hex)
    assert (caught.value.status, caught.value.code) == (404, "job_not_found")


def test_cancel_of_a_scheduled_job_cancels_it_and_a_second_cancel_conflicts(
    client: Client,
) -> None:
    job = client.submit("echo", {}, run_at=datetime.now(timezone.utc) + timedelta(hours=1))
    assert job.status == "scheduled"
    assert client.cancel(job.id).status == "cancelled"
    with pytest.raises(Conflict) as caught:
        client.cancel(job.id)
    assert caught.value.code == "invalid_transition"


def test_a_failed_job_is_retried_and_a_deleted_one_is_gone(client: Client) -> None:
    job = client.submit("fail", {"permanent": True})
    first = client.wait(job.id, timeout=20)
    assert first.status == "failed"
    client.retry(job.id)
    assert wait_until(lambda: client.get(job.id).finished_at != first.finished_at, 20)
    assert client.wait(job.id, timeout=20).status == "failed"
    client.delete(job.id)
    with pytest.raises(NotFound):
        client.get(job.id)


def test_listing_pages_with_a_cursor_through_every_job(client: Client) -> None:
    ids = {client.submit("echo", {"n": n}, queue="idle").id for n in range(5)}
    first = client.list_jobs(queue="idle", limit=2)
    assert len(first.jobs) <= 2 and first.next_cursor is not None
    assert {job.id for job in client.iter_jobs(queue="idle", page_size=2)} == ids


def test_submit_many_says_which_jobs_it_created(client: Client) -> None:
    requests = [JobRequest("echo", n, queue="idle", idempotency_key=f"k-{n}") for n in range(3)]
    first = client.submit_many(requests)
    again = client.submit_many(requests)
    assert [s.created for s in first] == [True, True, True]
    assert [s.created for s in again] == [False, False, False]
    assert [s.id for s in again] == [s.id for s in first]


def test_queues_workers_and_health_describe_the_running_stack(client: Client, stack: Stack) -> None:
    client.submit("echo", {}, queue="idle")
    assert "idle" in {queue.name for queue in client.queues()}
    (worker,) = client.workers()
    assert worker.pid == stack.workers()[0].pid
    assert worker.queues == ("default",)
    assert client.health().ok


def test_async_client_submits_and_waits(api: Api) -> None:
    async def scenario() -> tuple[str, object]:
        async with AsyncClient(api.url) as client:
            job = await client.submit("echo", {"async": True})
            done = await client.wait(job.id, timeout=20)
            listed = [j.id async for j in client.iter_jobs(page_size=10)]
            assert job.id in listed
            return done.status, done.result

    assert aio.run(scenario()) == ("completed", {"async": True})


def test_unreachable_api_raises_transport_error_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retry_policy=FAST_RETRY) as client, pytest.raises(TransportError) as caught:
        client.queues()
    assert caught.value.reason == "connection refused"


@pytest.fixture
def secured_api(stack: Stack) -> Api:
    return stack.start_api({"API_TOKEN": "secret"})


def test_secured_api_wants_the_token(secured_api: Api) -> None:
    with Client(secured_api.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.queues()
    with Client(secured_api.url, token="secret") as client:
        assert isinstance(client.queues(), list)


def test_a_submitted_priority_orders_the_queue(client: Client) -> None:
    low = client.submit("echo", {}, queue="idle")
    high = client.submit("echo", {}, queue="idle", priority=9)
    batch = client.submit_many([JobRequest("echo", {}, queue="idle", priority=5)])
    assert (client.get(high.id).priority, client.get(low.id).priority) == (9, 0)
    assert client.get(batch[0].id).priority == 5
    assert client.queue("idle").pending == 3
