"""Every input is judged before anything is written, and every stored record renders
(issue 15, findings 5 and 6), through falcon's TestClient against a real Redis."""

from __future__ import annotations

import falcon.testing
import pytest
import redis

from workstream.api.app import create_app
from workstream.common.keys import Keys
from workstream.common.serialization import MAX_NESTING
from workstream.common.settings import Settings
from workstream.common.store import JobStore

TestClient = falcon.testing.TestClient
FAR_RUN_AT = "9999-12-31T23:59:59.9999Z"
HUGE = b"1" + b"0" * 400  # 10**400: no float holds it


@pytest.fixture
def client(settings: Settings, store: JobStore) -> TestClient:
    # Built here rather than taken from api_fixtures: these tests need only the app, not the
    # live-server machinery that module also imports.
    return TestClient(create_app(settings, store))


def post_raw(client: TestClient, path: str, body: bytes) -> falcon.testing.Result:
    return client.simulate_post(path, body=body, headers={"Content-Type": "application/json"})


def assert_rejected(resp: falcon.testing.Result, field: str, redis_client: redis.Redis) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == "validation_error"
    assert resp.json["error"]["field"] == field
    assert redis_client.dbsize() == 0


def nested_list(depth: int) -> bytes:
    return b"[" * depth + b"0" + b"]" * depth


def test_run_at_past_year_9999_answers_400_naming_run_at_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    resp = client.simulate_post("/jobs", json={"type": "echo", "run_at": FAR_RUN_AT})
    assert_rejected(resp, "run_at", redis_client)


def test_run_at_beyond_the_delay_cap_in_a_batch_names_the_job(
    client: TestClient, redis_client: redis.Redis
) -> None:
    body = {"jobs": [{"type": "echo"}, {"type": "echo", "run_at": "2999-01-01T00:00:00Z"}]}
    assert_rejected(client.simulate_post("/jobs/batch", json=body), "jobs[1].run_at", redis_client)


@pytest.mark.parametrize("field", ["delay", "timeout", "max_attempts"])
def test_a_number_no_float_holds_answers_400_naming_the_field(
    client: TestClient, redis_client: redis.Redis, field: str
) -> None:
    resp = post_raw(client, "/jobs", b'{"type":"echo","%s":%s}' % (field.encode(), HUGE))
    assert_rejected(resp, field, redis_client)


def test_a_number_no_float_holds_in_a_batch_names_the_job(
    client: TestClient, redis_client: redis.Redis
) -> None:
    body = b'{"jobs":[{"type":"echo"},{"type":"echo"},{"type":"echo","delay":%s}]}' % HUGE
    assert_rejected(post_raw(client, "/jobs/batch", body), "jobs[2].delay", redis_client)


def test_a_payload_nested_at_the_limit_is_stored_and_read_back(client: TestClient) -> None:
    body = b'{"type":"echo","payload":%s}' % nested_list(MAX_NESTING)
    created = post_raw(client, "/jobs", body)
    assert created.status_code == 201
    read = client.simulate_get(f"/jobs/{created.json['id']}")
    assert read.status_code == 200 and read.json["payload"] == created.json["payload"]


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 500])
def test_a_payload_nested_past_the_limit_answers_400_naming_payload(
    client: TestClient, redis_client: redis.Redis, depth: int
) -> None:
    resp = post_raw(client, "/jobs", b'{"type":"echo","payload":%s}' % nested_list(depth))
    assert_rejected(resp, "payload", redis_client)


@pytest.mark.parametrize("depth", [978, 979, 980, 5000])
def test_a_payload_nested_near_the_recursion_limit_answers_400_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, depth: int
) -> None:
    # The 500 (RecursionError while encoding). Whether Python's parser gives up first
    # (invalid_json) or the payload check does (validation_error) depends on the stack depth.
    resp = post_raw(client, "/jobs", b'{"type":"echo","payload":%s}' % nested_list(depth))
    assert resp.status_code == 400 and redis_client.dbsize() == 0


def test_a_payload_that_cannot_be_stored_in_a_batch_names_the_job(
    client: TestClient, redis_client: redis.Redis
) -> None:
    body = b'{"jobs":[{"type":"echo"},{"type":"echo","payload":{"s":"\\udcff"}}]}'
    assert_rejected(post_raw(client, "/jobs/batch", body), "jobs[1].payload", redis_client)


# -- records the old code wrote (or a hand edit) still render ------------------------------------


@pytest.fixture
def far_scheduled_job(client: TestClient, store: JobStore, redis_client: redis.Redis) -> str:
    """A scheduled job whose run_at no RFC 3339 year can spell, as the old code stored it."""
    job_id = str(client.simulate_post("/jobs", json={"type": "echo", "delay": 60}).json["id"])
    redis_client.hset(Keys(store.settings.namespace).job(job_id), "run_at", "253402300800000")
    return job_id


@pytest.mark.parametrize("query", ["", "?status=scheduled", "?queue=default", "?type=echo"])
def test_a_stored_run_at_past_year_9999_still_lists(
    client: TestClient, far_scheduled_job: str, query: str
) -> None:
    resp = client.simulate_get(f"/jobs{query}")
    assert resp.status_code == 200, resp.text
    (job,) = resp.json["jobs"]
    assert job["id"] == far_scheduled_job and job["run_at"] == "9999-12-31T23:59:59.999Z"


def test_a_stored_run_at_past_year_9999_still_reads_and_cancels(
    client: TestClient, far_scheduled_job: str
) -> None:
    assert client.simulate_get(f"/jobs/{far_scheduled_job}").status_code == 200
    cancelled = client.simulate_post(f"/jobs/{far_scheduled_job}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"


def test_a_hand_edited_payload_too_deep_to_parse_still_reads_as_its_text(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = str(client.simulate_post("/jobs", json={"type": "echo"}).json["id"])
    deep = nested_list(5000).decode()
    redis_client.hset(Keys(store.settings.namespace).job(job_id), "payload", deep)
    resp = client.simulate_get(f"/jobs/{job_id}")
    assert resp.status_code == 200 and resp.json["payload"] == deep
    assert client.simulate_get("/jobs").status_code == 200


def test_a_hand_edited_record_with_junk_numbers_still_reads(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = str(client.simulate_post("/jobs", json={"type": "echo"}).json["id"])
    junk = {"enqueued_at": "soon", "attempts": "many", "timeout_ms": "1e400"}
    redis_client.hset(Keys(store.settings.namespace).job(job_id), mapping=junk)
    resp = client.simulate_get(f"/jobs/{job_id}")
    assert resp.status_code == 200 and resp.json["enqueued_at"] is None
    assert client.simulate_get("/jobs").status_code == 200
