"""A batch that can never fit is a 400 batch_exceeds_capacity; a 429 queue_full says, in
Retry-After, how long the queue takes to drain at its recent pace; GET / leads to the UI."""

from __future__ import annotations

import time
from collections.abc import Callable

import falcon.testing
import redis

from tests.integration import api_fixtures
from tests.integration.api_fixtures import submit
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient
MakeClient = Callable[..., TestClient]


def test_a_batch_bigger_than_the_whole_queue_is_a_400_that_writes_nothing(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="2")
    resp = client.simulate_post("/jobs/batch", json={"jobs": [{"type": "echo"}] * 3})
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "batch_exceeds_capacity"
    assert "Retry-After" not in resp.headers
    assert redis_client.dbsize() == 0


def test_the_capacity_is_counted_per_queue_in_a_batch(make_client: MakeClient) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="2")
    jobs = [{"type": "echo", "queue": "a"}] * 2 + [{"type": "echo", "queue": "b"}] * 2
    assert client.simulate_post("/jobs/batch", json={"jobs": jobs}).status_code == 201


def test_a_batch_that_fits_an_empty_queue_but_not_the_current_one_is_a_429(
    make_client: MakeClient,
) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="2")
    assert client.simulate_post("/jobs", json={"type": "echo"}).status_code == 201
    resp = client.simulate_post("/jobs/batch", json={"jobs": [{"type": "echo"}] * 2})
    assert resp.status_code == 429 and resp.json["error"]["code"] == "queue_full"


def test_retry_after_is_the_longest_wait_when_the_full_queue_does_not_drain(
    make_client: MakeClient, store: JobStore
) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="1")
    submit(store)

    def retry_after() -> int:
        return int(client.simulate_post("/jobs", json={"type": "echo"}).headers["Retry-After"])

    first = retry_after()  # nothing measured yet
    store.redis.hincrby(store.keys.stats, "completed|other|echo", 5)  # another queue drains
    time.sleep(1.05)
    assert (first, retry_after()) == (5, 60)


def test_get_root_redirects_to_the_dashboard(client: TestClient) -> None:
    resp = client.simulate_get("/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/ui"


def test_get_root_redirects_without_a_token_when_one_is_required(
    make_client: MakeClient,
) -> None:
    resp = make_client(API_TOKEN="s3cret-token-for-tests").simulate_get("/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/ui"
