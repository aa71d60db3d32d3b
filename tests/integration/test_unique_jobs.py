"""The `unique` option: while a live job holds a unique key, another job with that key is refused
(409 duplicate_job naming the holder) and nothing is written. `until` says when the holder lets
go (started, finished, or only the ttl); every lock expires after its ttl."""

from __future__ import annotations

import time
from typing import Any

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def snapshot(redis_client: redis.Redis) -> dict[str, str]:
    return {str(k): str(redis_client.dump(k)) for k in redis_client.scan_iter()}


def job(unique: Any, payload: Any = None, **fields: Any) -> dict[str, Any]:
    return {
        "type": "report",
        "payload": payload or {"day": "2026-12-03"},
        "unique": unique,
        **fields,
    }


def submit(client: TestClient, body: dict[str, Any]) -> falcon.testing.Result:
    return client.simulate_post("/jobs", json=body)


def refused_for(resp: falcon.testing.Result, holder: str, field: str = "unique") -> bool:
    error = resp.json["error"]
    return (resp.status_code, error["code"], error["job_id"], error["field"]) == (
        409,
        "duplicate_job",
        holder,
        field,
    )


def start(store: JobStore, queue: str = "default") -> Any:
    (claimed,) = store.claim("w1", 1, [queue])
    return claimed


def test_a_duplicate_while_the_first_is_pending_is_409_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    first = submit(client, job({"key": "report-day"}))
    assert first.status_code == 201 and first.json["unique_key"] == "report-day"
    before = snapshot(redis_client)
    again = submit(client, job({"key": "report-day"}, payload={"other": 1}))
    assert refused_for(again, first.json["id"])
    assert snapshot(redis_client) == before


def test_until_finished_refuses_while_running_and_accepts_after_completion(
    client: TestClient, store: JobStore
) -> None:
    first = submit(client, job({"key": "k", "until": "finished"})).json
    running = start(store)
    assert refused_for(submit(client, job({"key": "k"})), first["id"])
    store.complete("w1", running, "{}")
    assert submit(client, job({"key": "k"})).status_code == 201


@pytest.mark.parametrize("end", ["failed", "cancelled"])
def test_until_finished_lets_go_at_any_terminal_state(
    client: TestClient, store: JobStore, end: str
) -> None:
    first = submit(client, job({"key": "k"}, max_attempts=1)).json
    if end == "failed":
        store.fail("w1", start(store), "boom", permanent=True)
    else:
        store.cancel(first["id"])
    assert submit(client, job({"key": "k"})).status_code == 201


def test_until_started_refuses_while_pending_and_accepts_once_running(
    client: TestClient, store: JobStore
) -> None:
    first = submit(client, job({"key": "k", "until": "started"})).json
    assert refused_for(submit(client, job({"key": "k"})), first["id"])
    start(store)
    assert submit(client, job({"key": "k"})).status_code == 201


def test_until_started_holds_a_scheduled_job(client: TestClient) -> None:
    first = submit(client, job({"key": "k", "until": "started"}, delay=60)).json
    assert first["status"] == "scheduled"
    assert refused_for(submit(client, job({"key": "k"})), first["id"])


def test_until_ttl_holds_after_finishing_and_lets_go_when_the_ttl_runs_out(
    client: TestClient, store: JobStore
) -> None:
    first = submit(client, job({"key": "k", "until": "ttl", "ttl": "300ms"})).json
    store.complete("w1", start(store), "{}")
    assert refused_for(submit(client, job({"key": "k"})), first["id"])
    time.sleep(0.35)
    assert submit(client, job({"key": "k"})).status_code == 201


def test_a_lock_never_outlives_its_ttl_even_while_its_job_is_pending(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    submit(client, job({"key": "k", "ttl": 0.3}))
    ttl_ms = redis_client.pttl(store.keys.unique("k"))
    assert 0 < ttl_ms <= 300
    time.sleep(0.35)
    assert submit(client, job({"key": "k"})).status_code == 201  # the first is still pending


def test_the_ttl_defaults_to_an_hour_and_accepts_seconds_or_a_duration(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    submit(client, job({"key": "a"}))
    submit(client, job({"key": "b", "ttl": "10m"}))
    submit(client, job({"key": "c", "ttl": 90}))
    ttls = [redis_client.pttl(store.keys.unique(k)) for k in "abc"]
    assert 3_590_000 < ttls[0] <= 3_600_000
    assert 590_000 < ttls[1] <= 600_000 and 80_000 < ttls[2] <= 90_000


def test_release_is_fenced_a_finishing_old_holder_does_not_free_the_new_holders_lock(
    client: TestClient, store: JobStore
) -> None:
    old = submit(client, job({"key": "k", "ttl": "200ms"})).json
    running = start(store)
    time.sleep(0.25)  # the old lock ran out while its job runs: a new job takes the key
    new = submit(client, job({"key": "k"})).json
    store.complete("w1", running, "{}")
    assert old["id"] != new["id"]
    assert refused_for(submit(client, job({"key": "k"})), new["id"])


def test_without_a_key_a_job_is_unique_by_type_queue_and_payload(client: TestClient) -> None:
    first = submit(client, job({}, payload={"n": 1})).json
    assert first["unique_key"].startswith("sha256:")
    assert refused_for(submit(client, job({}, payload={"n": 1})), first["id"])
    assert submit(client, job({}, payload={"n": 2})).status_code == 201
    assert submit(client, job({}, payload={"n": 1}, queue="other")).status_code == 201
    assert submit(client, {**job({}, payload={"n": 1}), "type": "other"}).status_code == 201


def test_a_replayed_idempotency_key_answers_its_job_rather_than_a_duplicate(
    client: TestClient,
) -> None:
    body = job({"key": "k"}, idempotency_key="idem-1")
    first = submit(client, body)
    again = submit(client, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]


def test_a_batch_with_a_live_duplicate_is_409_naming_the_entry_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    holder = submit(client, job({"key": "k"})).json
    before = snapshot(redis_client)
    jobs = [{"type": "echo"}, job({"key": "k"})]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert refused_for(resp, holder["id"], "jobs[1].unique")
    assert snapshot(redis_client) == before


def test_two_entries_of_one_batch_with_one_key_are_duplicates(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = snapshot(redis_client)
    jobs = [job({"key": "k"}, payload=1), job({"key": "k"}, payload=2)]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 409 and resp.json["error"]["field"] == "jobs[1].unique"
    assert snapshot(redis_client) == before


@pytest.mark.parametrize(
    ("unique", "field"),
    [
        ("yes", "unique"),
        ([], "unique"),
        ({"key": "k", "scope": "x"}, "unique.scope"),
        ({"key": "no spaces"}, "unique.key"),
        ({"key": "k", "until": "done"}, "unique.until"),
        ({"key": "k", "ttl": "soon"}, "unique.ttl"),
        ({"key": "k", "ttl": 0}, "unique.ttl"),
        ({"key": "k", "ttl": 10**9}, "unique.ttl"),
    ],
)
def test_a_malformed_unique_option_is_400_naming_the_field_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, unique: Any, field: str
) -> None:
    before = snapshot(redis_client)
    resp = submit(client, job(unique))
    assert resp.status_code == 400
    assert (resp.json["error"]["code"], resp.json["error"]["field"]) == ("validation_error", field)
    assert "unknown field" not in resp.json["error"]["message"] or field != "unique"
    assert snapshot(redis_client) == before
