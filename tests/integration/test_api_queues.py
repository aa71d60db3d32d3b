"""/queues and /workers."""

from __future__ import annotations

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from tests.integration.api_fixtures import make_failed, submit
from workstream.common.store import JobStore

# The shared API fixtures, bound here so that pytest finds them for this module.
app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def test_list_queues_answers_every_known_queue_with_depths(
    client: TestClient, store: JobStore
) -> None:
    submit(store, queue="mail")
    submit(store, queue="mail", delay=60)
    make_failed(store, queue="mail")
    queues = {q["name"]: q for q in client.simulate_get("/queues").json["queues"]}
    assert set(queues) == {"default", "mail"}
    assert queues["mail"] == {
        "name": "mail",
        "pending": 1,
        "processing": 0,
        "scheduled": 1,
        "failed": 1,
        "paused": False,
        "workers": 0,
        "unserved": True,
        "unhandled_types": ["echo"],
        "limits": {"rate": None, "concurrency": None, "group_concurrency": None},
        "parked": 0,
        "waiting": 0,
    }


def test_get_queue_counts_processing_jobs(client: TestClient, store: JobStore) -> None:
    submit(store)
    store.claim("w1", 1, ["default"])
    assert client.simulate_get("/queues/default").json["processing"] == 1


def test_a_configured_queue_never_used_answers_zero_counts(client: TestClient) -> None:
    resp = client.simulate_get("/queues/default")
    assert resp.status_code == 200
    assert resp.json == {
        "name": "default",
        "pending": 0,
        "processing": 0,
        "scheduled": 0,
        "failed": 0,
        "paused": False,
        "workers": 0,
        "unserved": False,
        "unhandled_types": [],
        "limits": {"rate": None, "concurrency": None, "group_concurrency": None},
        "parked": 0,
        "waiting": 0,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/queues/never-used"),
        ("POST", "/queues/never-used/pause"),
        ("POST", "/queues/never-used/resume"),
        ("POST", "/queues/never-used/failed/retry"),
        ("POST", "/queues/never-used/failed/purge"),
        ("DELETE", "/queues/never-used"),
    ],
)
def test_any_request_on_a_queue_that_does_not_exist_answers_404_and_creates_nothing(
    client: TestClient, redis_client: redis.Redis, method: str, path: str
) -> None:
    resp = client.simulate_request(method, path)
    assert resp.status_code == 404, resp.text
    assert resp.json["error"]["code"] == "queue_not_found"
    assert redis_client.dbsize() == 0


def test_delete_forgets_an_empty_queue_its_name_flag_and_counters(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    submit(store, queue="mail", type="send")
    (job,) = store.claim("w1", 1, ["mail"])
    store.complete("w1", job, "{}")
    client.simulate_post("/queues/mail/pause")
    assert "mail" in store.queue_names()
    resp = client.simulate_delete("/queues/mail")
    assert resp.status_code == 204, resp.text
    assert "mail" not in store.queue_names()
    assert not [f for f in store.stats() if "mail" in f.split("|")]
    assert "mail" not in store.inflight() and store.paused_queues() == set()
    assert not redis_client.exists(store.keys.types("mail"))
    assert client.simulate_get("/queues/mail").status_code == 404


@pytest.mark.parametrize("holding", ["pending", "scheduled", "processing", "failed"])
def test_delete_refuses_a_queue_that_holds_a_job(
    client: TestClient, store: JobStore, holding: str
) -> None:
    if holding == "failed":
        make_failed(store, queue="mail")
    else:
        submit(store, queue="mail", delay=60 if holding == "scheduled" else None)
        if holding == "processing":
            store.claim("w1", 1, ["mail"])
    resp = client.simulate_delete("/queues/mail")
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "queue_not_empty" and holding in resp.text
    assert "mail" in store.queue_names()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/queues/bad%20name"),
        ("POST", "/queues/bad%20name/pause"),
        ("POST", "/queues/" + "q" * 65 + "/resume"),
        ("POST", "/queues/bad%21/failed/retry"),
        ("POST", "/queues/bad%21/failed/purge"),
    ],
)
def test_malformed_queue_name_in_path_answers_400_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, method: str, path: str
) -> None:
    resp = client.simulate_request(method, path)
    assert resp.status_code == 400
    assert resp.json["error"] == {
        "code": "validation_error",
        "message": resp.json["error"]["message"],
        "field": "name",
    }
    assert redis_client.dbsize() == 0


def test_pause_marks_the_queue_paused_and_resume_clears_it(
    client: TestClient, store: JobStore
) -> None:
    submit(store, queue="mail")
    paused = client.simulate_post("/queues/mail/pause")
    assert paused.status_code == 200 and paused.json["paused"] is True
    assert store.paused_queues() == {"mail"}
    resumed = client.simulate_post("/queues/mail/resume")
    assert resumed.json["paused"] is False and store.paused_queues() == set()


def test_retry_failed_answers_the_count_and_requeues_them(
    client: TestClient, store: JobStore
) -> None:
    make_failed(store, queue="mail")
    make_failed(store, queue="mail")
    resp = client.simulate_post("/queues/mail/failed/retry")
    assert resp.json == {"queue": "mail", "retried": 2}
    info = store.queue_info("mail")
    assert (info.failed, info.pending) == (0, 2)


def test_purge_failed_answers_the_count_and_deletes_them(
    client: TestClient, store: JobStore
) -> None:
    job_id = make_failed(store, queue="mail")
    resp = client.simulate_post("/queues/mail/failed/purge")
    assert resp.json == {"queue": "mail", "purged": 1}
    assert store.get_job(job_id) is None and store.queue_info("mail").failed == 0


def test_retry_failed_on_an_empty_queue_answers_zero(client: TestClient) -> None:
    resp = client.simulate_post("/queues/default/failed/retry")
    assert resp.json == {"queue": "default", "retried": 0}


def test_workers_lists_live_workers_with_slots_and_heartbeat_age(
    client: TestClient, store: JobStore
) -> None:
    store.heartbeat("w-1", "host-a", 4242, ["default", "mail"], 10, 3, ["echo"])
    submit(store)
    store.claim("w-1", 1, ["default"])  # slots_busy is what it holds now, not the beat's 3
    (worker,) = client.simulate_get("/workers").json["workers"]
    fields = ("id", "host", "pid", "queues", "handlers", "slots_busy", "slots_total")
    assert {k: worker[k] for k in fields} == {
        "id": "w-1",
        "host": "host-a",
        "pid": 4242,
        "queues": ["default", "mail"],
        "handlers": ["echo"],
        "slots_busy": 1,
        "slots_total": 10,
    }
    assert worker["started_at"].endswith("Z") and worker["last_heartbeat"].endswith("Z")
    assert 0 <= worker["heartbeat_age_s"] < 5


def test_workers_leaves_out_workers_past_their_ttl(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    store.heartbeat("w-old", "h", 1, ["default"], 1, 0)
    store.heartbeat("w-new", "h", 2, ["default"], 1, 0)
    stale = store.server_time_ms() - 120_000
    redis_client.zadd(store.keys.workers, {"w-old": stale})
    redis_client.hset(store.keys.worker("w-old"), "last_heartbeat", stale)
    ids = [w["id"] for w in client.simulate_get("/workers").json["workers"]]
    assert ids == ["w-new"]
