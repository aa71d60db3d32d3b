"""Idempotency keys to draft-ietf-httpapi-idempotency-key-header: the Idempotency-Key header works
as the body field, a replay of the same request answers the original job (200), and the key
reused for a different request is 422 idempotency_conflict with nothing written."""

from __future__ import annotations

import falcon.testing
import redis

from tests.integration import api_fixtures
from workstream.api.app import create_app
from workstream.common.settings import Settings
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient
JOB = {"type": "echo", "payload": {"to": "a@example.com", "n": 1}, "queue": "mail"}


def snapshot(redis_client: redis.Redis) -> dict[str, str]:
    """Every key with its type and a dump of its value: 'nothing written' compares these."""
    return {str(k): str(redis_client.dump(k)) for k in redis_client.scan_iter()}


def post(client: TestClient, body: object, key: str | None = None) -> falcon.testing.Result:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.simulate_post("/jobs", json=body, headers=headers)


def test_the_header_works_like_the_body_field(client: TestClient) -> None:
    first = post(client, JOB, key='"order-42"')  # a structured-field string, as the draft sends
    again = post(client, {**JOB, "idempotency_key": "order-42"})
    bare = post(client, JOB, key="order-42")
    assert (first.status_code, again.status_code, bare.status_code) == (201, 200, 200)
    assert first.json["idempotency_key"] == "order-42"
    assert again.json["id"] == bare.json["id"] == first.json["id"]


def test_header_and_body_given_and_equal_is_one_key(client: TestClient) -> None:
    resp = post(client, {**JOB, "idempotency_key": "k-1"}, key="k-1")
    assert resp.status_code == 201 and resp.json["idempotency_key"] == "k-1"
    replay = post(client, JOB, key="k-1")  # the header alone
    assert (replay.status_code, replay.json["id"]) == (200, resp.json["id"])


def test_header_and_body_that_differ_are_400_and_write_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = snapshot(redis_client)
    resp = post(client, {**JOB, "idempotency_key": "k-body"}, key="k-header")
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "validation_error"
    assert resp.json["error"]["field"] == "Idempotency-Key"
    assert snapshot(redis_client) == before


def test_a_malformed_header_is_400_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = snapshot(redis_client)
    resp = post(client, JOB, key="has spaces/and slashes")
    assert resp.status_code == 400 and resp.json["error"]["field"] == "Idempotency-Key"
    assert snapshot(redis_client) == before


def test_a_replay_with_keys_in_another_order_is_the_same_request(client: TestClient) -> None:
    first = post(client, JOB, key="k-2")
    reordered = {"queue": "mail", "payload": {"n": 1, "to": "a@example.com"}, "type": "echo"}
    again = post(client, reordered, key="k-2")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and "Location" not in again.headers


def test_the_key_reused_for_another_request_is_422_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    original = post(client, JOB, key="k-3").json
    before = snapshot(redis_client)
    for changed in (
        {**JOB, "payload": {"to": "b@example.com", "n": 1}},
        {**JOB, "type": "mail_send"},
        {**JOB, "queue": "other"},
        {**JOB, "max_attempts": 7},
        {**JOB, "delay": 30},
    ):
        resp = post(client, changed, key="k-3")
        assert resp.status_code == 422, changed
        error = resp.json["error"]
        assert error["code"] == "idempotency_conflict" and error["job_id"] == original["id"]
        assert error["field"] == "idempotency_key"
    assert snapshot(redis_client) == before


def test_a_batch_entry_reusing_a_key_for_another_request_is_422_naming_it(
    client: TestClient, redis_client: redis.Redis
) -> None:
    original = post(client, JOB, key="k-4").json
    before = snapshot(redis_client)
    jobs = [{"type": "echo"}, {**JOB, "payload": 2, "idempotency_key": "k-4"}]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 422
    error = resp.json["error"]
    assert error["code"] == "idempotency_conflict" and error["field"] == "jobs[1].idempotency_key"
    assert error["job_id"] == original["id"]
    assert snapshot(redis_client) == before


def test_a_batch_entry_replayed_answers_its_original_job(client: TestClient) -> None:
    original = post(client, JOB, key="k-5").json
    jobs = [{**JOB, "idempotency_key": "k-5"}, {"type": "echo", "idempotency_key": "k-6"}]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 201
    replayed, created = resp.json["jobs"]
    assert (replayed["id"], replayed["created"], created["created"]) == (
        original["id"],
        False,
        True,
    )


def test_two_entries_of_one_batch_with_one_key_and_different_requests_conflict(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = snapshot(redis_client)
    jobs = [{"type": "echo", "payload": 1, "idempotency_key": "k-7"}]
    jobs.append({"type": "echo", "payload": 2, "idempotency_key": "k-7"})
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "jobs[1].idempotency_key"
    assert snapshot(redis_client) == before


def test_the_header_on_a_batch_is_400_since_each_entry_has_its_own(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = snapshot(redis_client)
    resp = client.simulate_post(
        "/jobs/batch", json={"jobs": [JOB]}, headers={"Idempotency-Key": "k-8"}
    )
    assert resp.status_code == 400 and resp.json["error"]["field"] == "Idempotency-Key"
    assert snapshot(redis_client) == before


def test_a_replay_reaches_another_api_process_and_so_does_a_conflict(
    settings: Settings, redis_server: object
) -> None:
    """Two apps, each with its own connection: the key and its fingerprint live in Redis."""
    apps = []
    for _ in range(2):
        connection = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        apps.append(TestClient(create_app(settings, JobStore(connection, settings))))
    first = post(apps[0], JOB, key="k-9")
    again = post(apps[1], JOB, key="k-9")
    other = post(apps[1], {**JOB, "payload": 3}, key="k-9")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 422)
    assert again.json["id"] == first.json["id"] == other.json["error"]["job_id"]


def test_a_key_stored_without_a_fingerprint_still_replays(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    """Keys written before fingerprints (a bare job id) answer their job, whatever is sent."""
    first = post(client, JOB, key="k-10").json
    redis_client.set(store.keys.idempotency("k-10"), first["id"], ex=60)
    again = post(client, {**JOB, "payload": 4}, key="k-10")
    assert again.status_code == 200 and again.json["id"] == first["id"]


def test_a_payload_orjson_cannot_encode_is_fingerprinted_too(client: TestClient) -> None:
    body = {**JOB, "payload": {"big": 2**70}}
    first, again = post(client, body, key="k-11"), post(client, body, key="k-11")
    other = post(client, {**JOB, "payload": {"big": 2**70 + 1}}, key="k-11")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 422)
