"""Batches in named shards (QUEUE_SHARDS) on one standalone Redis holding several hash tags: a
batch lives in its members' shard (its id names it, `<shard>:<32 hex>`), so the scripts that
move its members keep its counts and settle it in their own slot; a callback for another
shard's queue is handed off through the outbox; GET /batches lists every shard's batches."""

from __future__ import annotations

from typing import Any, cast

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.common.keys import Keys
from workstream.common.outbox import Outbox
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore, open_store

A, HOME = Keys("default", "a"), Keys("default")
TestClient = falcon.testing.TestClient


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(redis_server.url, QUEUE_SHARDS="emails:a,images:b")


@pytest.fixture
def store(redis_client: redis.Redis, settings: Settings) -> ShardedStore:
    return cast(ShardedStore, open_store(redis_client, settings))


@pytest.fixture
def api(store: ShardedStore, settings: Settings) -> TestClient:
    return TestClient(create_app(settings, store))


def jobs(count: int, queue: str = "emails") -> list[dict[str, Any]]:
    return [{"type": "t", "queue": queue, "payload": {"i": i}} for i in range(count)]


def finish_all(store: ShardedStore, queue: str) -> int:
    shard = store.for_queue(queue)
    claimed = shard.claim("w1", 1000, [queue])
    for job in claimed:
        shard.complete("w1", job, "{}")
    return len(claimed)


def test_a_batch_of_a_named_shards_queue_lives_in_that_shard(
    api: TestClient, redis_client: redis.Redis
) -> None:
    made = api.simulate_post("/batches", json={"jobs": jobs(3)})
    assert made.status_code == 201
    batch_id = made.json["id"]
    assert batch_id.startswith("a:") and all(j["id"].startswith("a:") for j in made.json["jobs"])
    assert redis_client.exists(A.batch(batch_id)) and not redis_client.exists(HOME.batch(batch_id))
    shown = api.simulate_get(f"/batches/{batch_id}").json
    assert shown["total"] == 3 and shown["statuses"]["pending"] == 3
    assert [j["status"] for j in shown["jobs"]] == ["pending"] * 3


def test_it_settles_when_its_last_member_completes_and_its_callback_is_created_in_place(
    api: TestClient, store: ShardedStore, redis_client: redis.Redis
) -> None:
    report = {"type": "report", "queue": "emails"}
    made = api.simulate_post("/batches", json={"jobs": jobs(2), "on_success": report}).json
    assert finish_all(store, "emails") == 2
    shown = api.simulate_get(f"/batches/{made['id']}").json
    assert shown["state"] == "settled" and shown["counts"]["completed"] == 2
    callback = shown["on_success"]
    assert callback["created"] is True and callback["job_id"].startswith("a:")
    assert redis_client.zcard(A.outbox) == 0  # same shard: no hand-off
    job = api.simulate_get(f"/jobs/{callback['job_id']}").json
    assert job["status"] == "pending" and job["payload"]["batch"]["completed"] == 2


def test_a_callback_for_the_default_shard_is_handed_off_once(
    api: TestClient, store: ShardedStore, settings: Settings, redis_client: redis.Redis
) -> None:
    report = {"type": "report", "queue": "reports"}
    made = api.simulate_post("/batches", json={"jobs": jobs(1), "on_complete": report}).json
    finish_all(store, "emails")
    outbox = Outbox(redis_client, settings)
    assert outbox.owed() == 1
    assert outbox.move().moved == 1 and outbox.move().moved == 0
    callback = api.simulate_get(f"/batches/{made['id']}").json["on_complete"]
    assert len(callback["job_id"]) == 32  # the default shard's form
    job = api.simulate_get(f"/jobs/{callback['job_id']}").json
    assert job["queue"] == "reports" and job["payload"]["batch"]["id"] == made["id"]
    assert redis_client.llen(HOME.queue("reports")) == 1


def test_an_open_batch_takes_more_jobs_of_its_shard_and_refuses_others(
    api: TestClient, redis_client: redis.Redis
) -> None:
    made = api.simulate_post("/batches", json={"jobs": jobs(1), "open": True}).json
    batch_id = made["id"]
    added = api.simulate_post(f"/batches/{batch_id}/jobs", json={"jobs": jobs(2)})
    assert added.status_code == 201 and added.json["added"] == 2
    refused = api.simulate_post(f"/batches/{batch_id}/jobs", json={"jobs": jobs(1, "images")})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "validation_error"
    assert "own shard" in refused.json["error"]["message"]
    assert redis_client.llen(Keys("default", "b").queue("images")) == 0
    sealed = api.simulate_post(f"/batches/{batch_id}/seal").json
    assert sealed["state"] == "sealed" and sealed["total"] == 3


def test_an_empty_open_batch_is_the_default_shards(api: TestClient) -> None:
    made = api.simulate_post("/batches", json={"open": True}).json
    assert len(made["id"]) == 32
    refused = api.simulate_post(f"/batches/{made['id']}/jobs", json={"jobs": jobs(1)})
    assert refused.status_code == 400


def test_an_idempotency_key_replays_a_named_shards_batch(api: TestClient) -> None:
    headers = {"Idempotency-Key": "nightly-emails"}
    first = api.simulate_post("/batches", json={"jobs": jobs(2)}, headers=headers)
    again = api.simulate_post("/batches", json={"jobs": jobs(2)}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and first.json["id"].startswith("a:")
    assert again.json["total"] == 2
    assert [j["id"] for j in again.json["jobs"]] == [j["id"] for j in first.json["jobs"]]


def test_get_batches_pages_over_every_shards_batches_newest_first(api: TestClient) -> None:
    made = [
        api.simulate_post("/batches", json={"jobs": jobs(1, queue)}).json["id"]
        for queue in ("emails", "other", "images", "emails", "other")
    ]
    seen: list[str] = []
    times: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.simulate_get("/batches", params=params).json
        seen += [batch["id"] for batch in page["batches"]]
        times += [batch["created_at"] for batch in page["batches"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    assert times == sorted(times, reverse=True)


def test_an_idempotency_key_sent_again_with_another_shards_jobs_is_a_conflict(
    api: TestClient, redis_client: redis.Redis
) -> None:
    """The key made a batch in shard a; the same key with jobs of the default shard must not
    make a second batch there."""
    headers = {"Idempotency-Key": "nightly"}
    first = api.simulate_post("/batches", json={"jobs": jobs(1)}, headers=headers)
    assert first.status_code == 201
    other = api.simulate_post("/batches", json={"jobs": jobs(1, "other")}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_conflict"
    assert first.json["id"] in other.json["error"]["message"]
    assert redis_client.llen(HOME.queue("other")) == 0
    assert redis_client.zcard(HOME.batches) == 0
