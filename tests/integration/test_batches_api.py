"""/batches over HTTP: create, add in several calls, seal, read and list; refusals carry stable
codes and write nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon.testing
import redis

from tests.integration import api_fixtures
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient
MakeClient = Callable[..., TestClient]
REPORT = {"type": "report", "queue": "reports", "payload": {"to": "ops"}}


def jobs(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"type": "echo", "payload": {"i": i}, **fields} for i in range(count)]


def finish_all(store: JobStore, queue: str = "default") -> None:
    for job in store.claim("w1", 1000, [queue]):
        store.complete("w1", job, "{}")


def test_post_batches_creates_a_sealed_batch_whose_jobs_show_it(
    client: TestClient, store: JobStore
) -> None:
    resp = client.simulate_post("/batches", json={"jobs": jobs(3), "on_complete": REPORT})
    assert resp.status_code == 201
    body = resp.json
    assert resp.headers["Location"] == f"/batches/{body['id']}"
    assert body["state"] == "sealed" and body["total"] == 3
    assert body["counts"] == {"active": 3, "completed": 0, "failed": 0, "cancelled": 0}
    assert body["on_complete"]["created"] is False
    member = client.simulate_get(f"/jobs/{body['jobs'][0]['id']}").json
    assert member["batch"] == body["id"]


def test_get_batch_shows_counts_progress_and_pages_of_members(
    client: TestClient, store: JobStore
) -> None:
    made = client.simulate_post("/batches", json={"jobs": jobs(3)}).json
    (first, *_) = store.claim("w1", 1, ["default"])
    store.complete("w1", first, "{}")
    page = client.simulate_get(f"/batches/{made['id']}", params={"limit": "2"}).json
    assert page["counts"]["completed"] == 1 and page["counts"]["active"] == 2
    assert page["progress"] == round(1 / 3, 4)
    assert len(page["jobs"]) == 2 and page["next_cursor"] == "2"
    rest = client.simulate_get(f"/batches/{made['id']}", params={"cursor": "2"}).json
    assert [j["id"] for j in page["jobs"] + rest["jobs"]] == [j["id"] for j in made["jobs"]]
    assert rest["next_cursor"] is None
    assert {j["status"] for j in page["jobs"] + rest["jobs"]} == {"completed", "pending"}


def test_an_open_batch_is_filled_in_several_calls_then_sealed_and_settled(
    client: TestClient, store: JobStore
) -> None:
    made = client.simulate_post("/batches", json={"open": True, "on_complete": REPORT}).json
    assert made["state"] == "open" and made["total"] == 0
    for _ in range(3):
        resp = client.simulate_post(f"/batches/{made['id']}/jobs", json={"jobs": jobs(2)})
        assert resp.status_code == 201 and resp.json["added"] == 2
    finish_all(store)
    sealed = client.simulate_post(f"/batches/{made['id']}/seal")
    assert sealed.status_code == 200
    assert sealed.json["state"] == "settled" and sealed.json["on_complete"]["created"] is True
    callback = client.simulate_get(f"/jobs/{sealed.json['on_complete']['job_id']}").json
    assert callback["payload"]["batch"]["total"] == 6
    assert callback["payload"]["to"] == "ops"


def test_a_sealed_batch_refuses_adds_with_409_batch_sealed_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    made = client.simulate_post("/batches", json={"jobs": jobs(1)}).json
    before = redis_client.dbsize()
    resp = client.simulate_post(f"/batches/{made['id']}/jobs", json={"jobs": jobs(2)})
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "batch_sealed"
    assert redis_client.dbsize() == before


def test_a_batch_over_capacity_is_429_and_writes_nothing(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="3")
    client.simulate_post("/jobs/batch", json={"jobs": jobs(2)})
    before = redis_client.dbsize()
    resp = client.simulate_post("/batches", json={"jobs": jobs(2), "on_complete": REPORT})
    assert resp.status_code == 429
    assert resp.json["error"]["code"] == "queue_full"
    assert redis_client.dbsize() == before
    assert client.simulate_get("/batches").json["batches"] == []


def test_a_retried_add_with_the_same_idempotency_key_adds_nothing_twice(
    client: TestClient,
) -> None:
    made = client.simulate_post("/batches", json={"open": True}).json
    headers = {"Idempotency-Key": "chunk-1"}
    url = f"/batches/{made['id']}/jobs"
    first = client.simulate_post(url, json={"jobs": jobs(3)}, headers=headers)
    again = client.simulate_post(url, json={"jobs": jobs(3)}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["added"] == 0
    assert [j["id"] for j in again.json["jobs"]] == [j["id"] for j in first.json["jobs"]]
    assert client.simulate_get(f"/batches/{made['id']}").json["total"] == 3


def test_a_retried_create_with_the_same_idempotency_key_answers_the_same_batch(
    client: TestClient,
) -> None:
    headers = {"Idempotency-Key": "nightly-2026-12-03"}
    first = client.simulate_post("/batches", json={"jobs": jobs(2)}, headers=headers)
    again = client.simulate_post("/batches", json={"jobs": jobs(2)}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and again.json["total"] == 2
    other = client.simulate_post("/batches", json={"jobs": jobs(3)}, headers=headers)
    assert other.status_code == 422
    assert other.json["error"]["code"] == "idempotency_conflict"


def test_hostile_input_gets_400s_with_the_field_named(client: TestClient) -> None:
    cases: list[tuple[Any, str]] = [
        ({"jobs": "x"}, "jobs"),
        ({"jobs": [{"type": "echo"}], "colour": 1}, "colour"),
        ({"jobs": [{"type": "bad type"}]}, "jobs[0].type"),
        ({"open": "yes"}, "open"),
        ({"open": True, "on_complete": {"type": "r", "payload": [1]}}, "on_complete.payload"),
        ({"open": True, "on_complete": {"type": "r", "delay": 5}}, "on_complete.delay"),
        (
            {"open": True, "on_success": {"type": "r", "payload": {"batch": 1}}},
            "on_success.payload.batch",
        ),
        ({"jobs": []}, "jobs"),
    ]
    for body, field in cases:
        resp = client.simulate_post("/batches", json=body)
        assert resp.status_code == 400, body
        assert resp.json["error"]["field"] == field, body
    assert client.simulate_get("/batches").json["batches"] == []


def test_unknown_batches_are_404_batch_not_found(client: TestClient) -> None:
    for path in ("/batches/" + "0" * 32, "/batches/not-an-id"):
        assert client.simulate_get(path).json["error"]["code"] == "batch_not_found"
    resp = client.simulate_post("/batches/" + "0" * 32 + "/jobs", json={"jobs": jobs(1)})
    assert resp.status_code == 404
    assert client.simulate_post("/batches/" + "0" * 32 + "/seal").status_code == 404


def test_get_batches_lists_newest_first_in_pages(client: TestClient) -> None:
    ids = [client.simulate_post("/batches", json={"open": True}).json["id"] for _ in range(3)]
    first = client.simulate_get("/batches", params={"limit": "2"}).json
    rest = client.simulate_get(
        "/batches", params={"limit": "2", "cursor": first["next_cursor"]}
    ).json
    assert sorted(b["id"] for b in first["batches"] + rest["batches"]) == sorted(ids)


def test_a_callback_to_a_queue_of_another_shard_gets_an_id_of_that_shard(
    make_client: MakeClient,
) -> None:
    """Created through the outbox when the batch settles (tests/integration/test_outbox.py)."""
    client = make_client(QUEUE_SHARDS="emails:a")
    body = {"jobs": jobs(1), "on_complete": {"type": "report", "queue": "emails"}}
    resp = client.simulate_post("/batches", json=body)
    assert resp.status_code == 201
    assert resp.json["on_complete"]["job_id"].startswith("a:")


def test_adding_past_capacity_is_429_and_writes_nothing(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="3")
    made = client.simulate_post("/batches", json={"jobs": jobs(2), "open": True}).json
    before = redis_client.dbsize()
    resp = client.simulate_post(f"/batches/{made['id']}/jobs", json={"jobs": jobs(2)})
    assert resp.status_code == 429
    assert redis_client.dbsize() == before
    assert client.simulate_get(f"/batches/{made['id']}").json["total"] == 2


def test_a_callback_queue_past_max_queues_is_refused_before_any_write(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(MAX_QUEUES="1")
    body = {"jobs": jobs(1, queue="a"), "on_complete": {"type": "report", "queue": "b"}}
    resp = client.simulate_post("/batches", json=body)
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "too_many_queues"
    assert redis_client.dbsize() == 0


def test_adds_refuse_bad_bodies_with_the_field_named(client: TestClient) -> None:
    made = client.simulate_post("/batches", json={"open": True}).json
    url = f"/batches/{made['id']}/jobs"
    keyed = {"jobs": [{"type": "echo", "idempotency_key": "own"}]}
    cases: list[tuple[Any, dict[str, str], str]] = [
        ({}, {}, "jobs"),
        ({"jobs": []}, {}, "jobs"),
        ({"jobs": [{"type": "echo"}] * 1001}, {}, "jobs"),
        ({"jobs": [1]}, {}, "jobs[0]"),
        (keyed, {"Idempotency-Key": "call-1"}, "jobs[0].idempotency_key"),
    ]
    for body, headers, field in cases:
        resp = client.simulate_post(url, json=body, headers=headers)
        assert resp.status_code == 400, body
        assert resp.json["error"]["field"] == field, body
    assert client.simulate_get(f"/batches/{made['id']}").json["total"] == 0


def test_get_batch_shows_its_members_by_status_now(client: TestClient, store: JobStore) -> None:
    made = client.simulate_post(
        "/batches", json={"jobs": [*jobs(3), {"type": "echo", "delay": 60}]}
    ).json
    first, second = store.claim("w1", 2, ["default"])
    store.complete("w1", first, "{}")
    store.fail("w1", second, "boom", permanent=True)
    store.retry(second.id)  # live: failed -> pending; its outcome stays counted once
    body = client.simulate_get(f"/batches/{made['id']}").json
    assert body["statuses"] == {
        "waiting": 0,
        "scheduled": 1,
        "pending": 2,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert body["counts"] == {"active": 2, "completed": 1, "failed": 1, "cancelled": 0}


def test_a_batch_recorded_before_live_counts_shows_statuses_null(
    client: TestClient, store: JobStore
) -> None:
    made = client.simulate_post("/batches", json={"jobs": jobs(2)}).json
    store.redis.hdel(store.keys.batch(made["id"]), "live_pending")
    body = client.simulate_get(f"/batches/{made['id']}").json
    assert body["statuses"] is None and body["counts"]["active"] == 2
