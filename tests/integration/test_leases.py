"""The lease protocol (POST /leases, /jobs/{id}/complete|fail|extend) through falcon's
TestClient against a real redis-server; the sweeper's reclaim is called as the sweeper calls it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from tests.integration.api_fixtures import submit
from workstream.common.serialization import rfc3339_to_ms
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient


def lease(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    resp = client.simulate_post("/leases", json={"queues": ["default"], "consumer": "c1", **body})
    assert resp.status_code == 200, resp.json
    leases: list[dict[str, Any]] = resp.json["leases"]
    return leases


def answer(client: TestClient, job_id: str, action: str, **body: Any) -> falcon.testing.Result:
    return client.simulate_post(f"/jobs/{job_id}/{action}", json=body)


def body_for(action: str, token: str) -> dict[str, Any]:
    """A valid answer of each kind under `token`."""
    extra: dict[str, dict[str, Any]] = {
        "complete": {"result": None},
        "fail": {"error": "x"},
        "extend": {"lease_s": 5},
    }
    return {"lease": token, **extra[action]}


def status_of(store: JobStore, job_id: str) -> str | None:
    status = store.get_status(job_id)
    return None if status is None else status.value


def stale_count(store: JobStore) -> int:
    return store.stats().get("stale_completions", 0)


def sweep(store: JobStore) -> int:
    """The sweeper's reclaim, with its margin (worker.background.sweeper_step)."""
    return store.reclaim(round(store.settings.worker_ttl.total_seconds() * 1000))


def expire(store: JobStore, job_id: str) -> None:
    """Moves a lease's expiry into the past, as time passing would."""
    store.redis.hset(store.keys.job(job_id), "lease_expires_at", store.server_time_ms() - 1)
    margin = round(store.settings.worker_ttl.total_seconds() * 1000)
    store.redis.zadd(store.keys.deadlines, {job_id: store.server_time_ms() - 1 - margin})


def test_a_lease_holds_the_job_its_token_and_expiry(client: TestClient, store: JobStore) -> None:
    job_id = submit(store, payload={"n": 1})
    before = store.server_time_ms()
    (held,) = lease(client, lease_s=30)
    job = held["job"]
    assert (job["id"], job["status"], job["payload"], job["attempts"]) == (
        job_id,
        "processing",
        {"n": 1},
        1,
    )
    assert job["worker"] == "http:c1"
    assert held["lease"].startswith("1.")
    expires = rfc3339_to_ms(held["expires_at"])
    assert before + 30_000 <= expires <= store.server_time_ms() + 30_000
    assert store.redis.lrange(store.keys.processing("http:c1"), 0, -1) == [job_id]


def test_count_takes_a_batch_from_the_queues_in_order_skipping_paused_ones(
    client: TestClient, store: JobStore
) -> None:
    low = [submit(store, queue="low") for _ in range(3)]
    high = [submit(store, queue="high") for _ in range(2)]
    paused = submit(store, queue="paused")
    store.pause("paused")
    leases = lease(client, queues=["paused", "high", "low"], count=4)
    assert [x["job"]["id"] for x in leases] == [*high, *low[:2]]
    assert status_of(store, paused) == "pending"
    assert len({x["lease"] for x in leases}) == 4


def test_nothing_to_lease_answers_an_empty_list(client: TestClient) -> None:
    assert lease(client, wait=0) == []


def test_wait_long_polls_until_a_job_arrives(client: TestClient, store: JobStore) -> None:
    timer = threading.Timer(0.3, lambda: submit(store))
    timer.start()
    started = time.monotonic()
    leases = lease(client, wait=5)
    timer.join()
    assert len(leases) == 1 and 0.25 < time.monotonic() - started < 3


def test_wait_ends_empty_after_the_given_seconds(client: TestClient) -> None:
    started = time.monotonic()
    assert lease(client, wait=0.5) == []
    assert 0.45 < time.monotonic() - started < 2


def test_complete_records_the_result_and_a_resend_answers_the_same(
    client: TestClient, store: JobStore
) -> None:
    submit(store)
    (held,) = lease(client)
    job_id = held["job"]["id"]
    first = answer(client, job_id, "complete", lease=held["lease"], result={"ok": 1})
    assert first.status_code == 200
    assert (first.json["status"], first.json["result"]) == ("completed", {"ok": 1})
    again = answer(client, job_id, "complete", lease=held["lease"], result={"ok": 1})
    assert again.status_code == 200 and again.json["status"] == "completed"
    assert store.redis.llen(store.keys.processing("http:c1")) == 0
    assert stale_count(store) == 0


@pytest.mark.parametrize("action", ["complete", "fail", "extend"])
def test_a_token_of_another_lease_is_lease_lost_counted_and_changes_nothing(
    client: TestClient, store: JobStore, action: str
) -> None:
    submit(store)
    submit(store)
    first, second = lease(client, count=2)
    job_id = first["job"]["id"]
    resp = answer(client, job_id, action, **body_for(action, second["lease"]))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "lease_lost"
    assert stale_count(store) == 1
    job = store.get_job(job_id)
    assert job is not None and job.status.value == "processing" and job.attempts == 1


@pytest.mark.parametrize("token", ["1", "nonsense", "1.00000000000000zz", "99.0123456789abcdef"])
def test_a_token_this_api_never_handed_out_is_lease_lost(
    client: TestClient, store: JobStore, token: str
) -> None:
    job_id = submit(store)
    lease(client)
    resp = answer(client, job_id, "complete", lease=token, result=1)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "lease_lost"
    assert status_of(store, job_id) == "processing"


def test_an_unknown_job_is_lease_lost(client: TestClient) -> None:
    resp = answer(client, "0" * 32, "complete", lease="1.0123456789abcdef", result=1)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "lease_lost"


def test_a_malformed_job_id_is_404(client: TestClient) -> None:
    resp = answer(client, "nope!", "complete", lease="1.0123456789abcdef", result=1)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "job_not_found"


@pytest.mark.parametrize("action", ["complete", "fail", "extend"])
def test_an_expired_lease_is_lease_lost_even_before_the_sweeper_comes(
    client: TestClient, store: JobStore, action: str
) -> None:
    job_id = submit(store)
    (held,) = lease(client, lease_s=1)
    time.sleep(1.05)
    resp = answer(client, job_id, action, **body_for(action, held["lease"]))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "lease_lost"
    assert stale_count(store) == 1
    assert status_of(store, job_id) == "processing"


def test_an_expired_lease_is_reclaimed_with_its_attempt_used_and_a_late_complete_refused(
    client: TestClient, store: JobStore
) -> None:
    job_id = submit(store, max_attempts=3)
    (held,) = lease(client, lease_s=30)
    assert sweep(store) == 0  # not before its expiry
    expire(store, job_id)
    assert sweep(store) == 1
    job = store.get_job(job_id)
    assert job is not None and job.status.value == "pending" and job.attempts == 1
    assert job.history is not None and job.history[-1]["outcome"] == "lost"
    assert job.history[-1]["error"] == job.error == "lease expired: no answer from consumer c1"
    assert store.redis.llen(store.keys.processing("http:c1")) == 0
    (again,) = lease(client, consumer="c2")
    assert again["job"]["id"] == job_id and again["lease"] != held["lease"]
    late = answer(client, job_id, "complete", lease=held["lease"], result="late")
    assert late.status_code == 409 and stale_count(store) == 1
    # The new holder's list and lease are untouched by the late answer.
    assert store.redis.lrange(store.keys.processing("http:c2"), 0, -1) == [job_id]
    done = answer(client, job_id, "complete", lease=again["lease"], result="ok")
    assert done.status_code == 200 and done.json["result"] == "ok"


def test_an_expired_lease_on_the_last_attempt_fails_the_job(
    client: TestClient, store: JobStore
) -> None:
    job_id = submit(store, max_attempts=1)
    lease(client)
    expire(store, job_id)
    assert sweep(store) == 1
    assert status_of(store, job_id) == "failed"


def test_fail_with_retry_schedules_another_attempt(client: TestClient, store: JobStore) -> None:
    job_id = submit(store, max_attempts=2)
    (held,) = lease(client)
    resp = answer(client, job_id, "fail", lease=held["lease"], error="boom", retry=True)
    assert resp.status_code == 200
    assert (resp.json["status"], resp.json["error"]) == ("pending", "boom")
    assert resp.json["history"][-1]["outcome"] == "failed"
    (second,) = lease(client)
    resp = answer(client, job_id, "fail", lease=second["lease"], error="boom", retry=True)
    assert resp.json["status"] == "failed"  # attempts used up


@pytest.mark.parametrize("error", ["cancelled while running", "timed out after 5s"])
def test_a_consumers_error_text_never_decides_the_outcome(
    client: TestClient, store: JobStore, error: str
) -> None:
    """Only a requested cancel ends a run cancelled, whatever words a consumer sends back."""
    job_id = submit(store, max_attempts=2)
    (held,) = lease(client)
    resp = answer(client, job_id, "fail", lease=held["lease"], error=error, retry=True)
    assert resp.status_code == 200
    assert (resp.json["status"], resp.json["error"]) == ("pending", error)
    assert resp.json["history"][-1]["outcome"] == "failed"


def test_fail_without_retry_fails_for_good(client: TestClient, store: JobStore) -> None:
    job_id = submit(store, max_attempts=5)
    (held,) = lease(client)
    resp = answer(client, job_id, "fail", lease=held["lease"], error="bad input", retry=False)
    assert resp.status_code == 200 and resp.json["status"] == "failed"
    assert store.redis.llen(store.keys.processing("http:c1")) == 0


def test_extend_moves_the_expiry_and_stores_progress(client: TestClient, store: JobStore) -> None:
    job_id = submit(store)
    (held,) = lease(client, lease_s=2)
    resp = answer(client, job_id, "extend", lease=held["lease"], lease_s=600, progress={"p": 5})
    assert resp.status_code == 200 and resp.json["cancel_requested"] is False
    expires = rfc3339_to_ms(resp.json["expires_at"])
    assert expires >= store.server_time_ms() + 599_000
    assert store.redis.hget(store.keys.job(job_id), "progress") == '{"p":5}'
    assert client.simulate_get(f"/jobs/{job_id}").json["progress"] == {"p": 5}
    entries: Any = store.redis.xrevrange(store.keys.events, count=1)  # extend tells progress
    last = entries[0][1]
    assert (last["ev"], last["job"], last["detail"]) == ("progress", job_id, '{"p":5}')
    time.sleep(2.1)  # past the first expiry: the extended lease still holds
    assert sweep(store) == 0
    done = answer(client, job_id, "complete", lease=held["lease"], result=None)
    assert done.status_code == 200


def test_a_consumer_appears_in_workers_while_it_leases(client: TestClient, store: JobStore) -> None:
    submit(store)
    lease(client, consumer="node-1", queues=["default", "other"], count=5)
    workers = client.simulate_get("/workers").json["workers"]
    (entry,) = [w for w in workers if w["id"] == "http:node-1"]
    assert entry["queues"] == ["default", "other"] and entry["slots_busy"] == 1


def test_a_consumer_holding_a_lease_is_not_presumed_dead_by_the_sweeper(
    client: TestClient, store: JobStore
) -> None:
    submit(store)
    lease(client, lease_s=3600)
    ttl_ms = round(store.settings.worker_ttl.total_seconds() * 1000)
    score = store.redis.zscore(store.keys.workers, "http:c1")
    assert score is not None and score >= store.server_time_ms() + 3_590_000
    assert "http:c1" not in store.dead_workers()
    assert ttl_ms > 0


BAD_LEASES = [
    ({}, "queues"),
    ({"queues": []}, "queues"),
    ({"queues": "default"}, "queues"),
    ({"queues": ["bad name"]}, "queues"),
    ({"queues": ["a", "a"]}, "queues"),
    ({"queues": [f"q{i}" for i in range(33)]}, "queues"),
    ({"count": 0}, "count"),
    ({"count": 101}, "count"),
    ({"count": 1.5}, "count"),
    ({"count": True}, "count"),
    ({"wait": -1}, "wait"),
    ({"wait": 61}, "wait"),
    ({"wait": "1"}, "wait"),
    ({"lease_s": 0.5}, "lease_s"),
    ({"lease_s": 3601}, "lease_s"),
    ({"lease_s": 10**400}, "lease_s"),
    ({"consumer": ""}, "consumer"),
    ({"consumer": "a/b"}, "consumer"),
    ({"consumer": "x" * 65}, "consumer"),
    ({"consumer": None}, "consumer"),
    ({"extra": 1}, "extra"),
]


@pytest.mark.parametrize(("change", "field"), BAD_LEASES)
def test_a_bad_lease_request_is_400_naming_the_field_and_takes_nothing(
    client: TestClient,
    store: JobStore,
    redis_client: redis.Redis,
    change: dict[str, Any],
    field: str,
) -> None:
    job_id = submit(store)
    body: dict[str, Any] = {"queues": ["default"], "consumer": "c1", **change}
    if field == "queues" and "queues" not in change:
        del body["queues"]
    if field == "consumer" and change.get("consumer") is None:
        del body["consumer"]
    resp = client.simulate_post("/leases", json=body)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "validation_error" and resp.json["error"]["field"] == field
    assert status_of(store, job_id) == "pending"
    assert redis_client.zcard(store.keys.workers) == 0


BAD_ANSWERS = [
    ("complete", {"result": 1}, "lease"),
    ("complete", {"lease": 5, "result": 1}, "lease"),
    ("complete", {"lease": "x" * 65}, "lease"),
    ("complete", {"lease": "1.0123456789abcdef", "other": 1}, "other"),
    ("fail", {"lease": "1.0123456789abcdef"}, "error"),
    ("fail", {"lease": "1.0123456789abcdef", "error": ""}, "error"),
    ("fail", {"lease": "1.0123456789abcdef", "error": "x" * 4001}, "error"),
    ("fail", {"lease": "1.0123456789abcdef", "error": "x", "retry": "yes"}, "retry"),
    ("extend", {"lease": "1.0123456789abcdef", "lease_s": 0}, "lease_s"),
    ("extend", {"lease": "1.0123456789abcdef", "progress": "x" * 5000}, "progress"),
]


@pytest.mark.parametrize(("action", "body", "field"), BAD_ANSWERS)
def test_a_bad_answer_is_400_naming_the_field_and_changes_nothing(
    client: TestClient, store: JobStore, action: str, body: dict[str, Any], field: str
) -> None:
    submit(store)
    (held,) = lease(client)
    job_id = held["job"]["id"]
    resp = answer(client, job_id, action, **body)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "validation_error" and resp.json["error"]["field"] == field
    assert status_of(store, job_id) == "processing"
    assert stale_count(store) == 0


def test_a_body_that_is_not_json_is_400_invalid_json(client: TestClient) -> None:
    resp = client.simulate_post("/leases", body=b"{", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_json"


def test_an_idle_consumer_drops_out_of_workers_after_worker_ttl(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(WORKER_TTL="500ms", RETRY_BACKOFF="0s")

    def listed() -> set[str]:
        return {w["id"] for w in client.simulate_get("/workers").json["workers"]}

    assert lease(client, consumer="idle") == []
    assert "http:idle" in listed()
    time.sleep(0.6)
    assert "http:idle" not in listed()


def test_a_queue_served_only_by_consumers_has_no_unhandled_types(
    client: TestClient, store: JobStore
) -> None:
    submit(store, queue="http-only")
    submit(store, queue="http-only")
    lease(client, queues=["http-only"])
    (queue,) = [
        q for q in client.simulate_get("/queues").json["queues"] if q["name"] == "http-only"
    ]
    assert (queue["workers"], queue["unserved"], queue["unhandled_types"]) == (1, False, [])


def test_extend_tells_the_consumer_a_cancel_was_asked_and_its_answer_ends_the_job_cancelled(
    client: TestClient, store: JobStore
) -> None:
    job_id = submit(store)
    (held,) = lease(client)
    assert client.simulate_post(f"/jobs/{job_id}/cancel").status_code == 202
    resp = answer(client, job_id, "extend", lease=held["lease"], lease_s=30)
    assert resp.status_code == 200 and resp.json["cancel_requested"] is True
    done = answer(client, job_id, "complete", lease=held["lease"], result="ignored")
    assert done.status_code == 200 and done.json["status"] == "cancelled"


def test_with_scoped_tokens_a_work_token_leases_and_answers_and_a_produce_token_cannot(
    make_client: Callable[..., TestClient], store: JobStore
) -> None:
    client = make_client(API_TOKENS="work:w-token,produce:p-token")
    work = {"Authorization": "Bearer w-token"}
    produce = {"Authorization": "Bearer p-token"}
    body = {"queues": ["default"], "consumer": "c1"}
    job_id = submit(store)
    refused = client.simulate_post("/leases", json=body, headers=produce)
    assert refused.status_code == 403 and status_of(store, job_id) == "pending"
    (held,) = client.simulate_post("/leases", json=body, headers=work).json["leases"]
    answer_body = {"lease": held["lease"], "result": 1}
    path = f"/jobs/{job_id}/complete"
    assert client.simulate_post(path, json=answer_body, headers=produce).status_code == 403
    assert client.simulate_post(path, json=answer_body, headers=work).status_code == 200
