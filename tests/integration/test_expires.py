"""expires_at / expires_in: a job that has not started by then is cancelled with error "expired"
and never runs. A claim cancels the expired jobs it meets; the sweeper's expire cancels the
rest (no worker, a paused queue, a job still scheduled) in bounded batches."""

from __future__ import annotations

import time
from typing import Any

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from workstream.common.jobs import EXPIRED_ERROR
from workstream.common.serialization import ms_to_rfc3339
from workstream.common.store import JobStore
from workstream.worker.background import sweeper_step

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def snapshot(redis_client: redis.Redis) -> dict[str, str]:
    return {str(k): str(redis_client.dump(k)) for k in redis_client.scan_iter()}


def submit(client: TestClient, **fields: Any) -> dict[str, Any]:
    resp = client.simulate_post("/jobs", json={"type": "echo", **fields})
    assert resp.status_code == 201, resp.json
    return dict(resp.json)


def status(client: TestClient, job_id: str) -> tuple[str, str | None]:
    job = client.simulate_get(f"/jobs/{job_id}").json
    return job["status"], job["error"]


def test_expires_at_is_kept_and_shown(client: TestClient) -> None:
    at = ms_to_rfc3339(round((time.time() + 3600) * 1000))
    job = submit(client, expires_at=at)
    assert job["expires_at"] == at
    assert client.simulate_get(f"/jobs/{job['id']}").json["expires_at"] == at


def test_an_expired_job_is_cancelled_at_claim_and_never_started(
    client: TestClient, store: JobStore
) -> None:
    expired = submit(client, expires_in=0.05)
    fresh = submit(client)
    time.sleep(0.1)
    claimed = store.claim("w1", 2, ["default"])
    assert [job.id for job in claimed] == [fresh["id"]]
    assert status(client, expired["id"]) == ("cancelled", EXPIRED_ERROR)
    assert store.redis.lrange(store.keys.processing("w1"), 0, -1) == [fresh["id"]]
    assert store.stats()["cancelled|default|echo"] == 1


def test_an_expired_job_taken_by_blmove_is_cancelled_not_started(
    client: TestClient, store: JobStore
) -> None:
    expired = submit(client, expires_in="50ms")
    time.sleep(0.1)
    assert store.take_and_start("w1", "default", 0.1) is None
    assert status(client, expired["id"]) == ("cancelled", EXPIRED_ERROR)
    assert store.redis.llen(store.keys.processing("w1")) == 0


def test_a_job_started_in_time_is_not_touched_by_its_expiry(
    client: TestClient, store: JobStore
) -> None:
    job = submit(client, expires_in=0.1)
    (running,) = store.claim("w1", 1, ["default"])
    time.sleep(0.15)
    assert store.expire() == 1
    store.complete("w1", running, "{}")
    assert status(client, job["id"]) == ("completed", None)


def test_a_retry_after_the_expiry_still_runs(client: TestClient, store: JobStore) -> None:
    """Expiry bounds the first start; a job that began an attempt is retried as usual."""
    job = submit(client, expires_in=0.1, max_attempts=2)
    (first,) = store.claim("w1", 1, ["default"])
    store.fail("w1", first, "boom", permanent=False)  # RETRY_BACKOFF=0s: pending again
    time.sleep(0.15)
    assert store.expire() == 1
    (second,) = store.claim("w1", 1, ["default"])
    assert (second.id, second.attempt) == (job["id"], 2)


@pytest.mark.parametrize("timing", [{}, {"delay": 0.05}])
def test_the_sweeper_cancels_expired_jobs_no_worker_reached(
    client: TestClient, store: JobStore, redis_client: redis.Redis, timing: dict[str, Any]
) -> None:
    """A pending job, and one still scheduled (its delay ran past the expiry, no promote yet)."""
    job = submit(client, expires_in=0.1, **timing)
    time.sleep(0.15)
    assert store.expire() == 1
    assert status(client, job["id"]) == ("cancelled", EXPIRED_ERROR)
    assert redis_client.llen(store.keys.queue("default")) == 0
    assert redis_client.zcard(store.keys.scheduled("default")) == 0
    assert redis_client.zcard(store.keys.expiring) == 0
    assert 0 < redis_client.pttl(store.keys.job(job["id"])) <= 86_400_000  # RESULT_TTL
    assert redis_client.zscore(store.keys.expiries, job["id"]) is not None
    assert store.claim("w1", 1, ["default"]) == []


def test_the_sweeper_gives_a_job_cancelled_at_claim_its_result_ttl(
    client: TestClient, store: JobStore, redis_client: redis.Redis
) -> None:
    job = submit(client, expires_in=0.05)
    time.sleep(0.1)
    assert store.claim("w1", 1, ["default"]) == []
    assert redis_client.pttl(store.keys.job(job["id"])) == -1
    assert store.expire() == 1
    assert 0 < redis_client.pttl(store.keys.job(job["id"])) <= 86_400_000
    assert redis_client.zscore(store.keys.expiries, job["id"]) is not None


def test_expire_works_in_bounded_batches(client: TestClient, store: JobStore) -> None:
    ids = [submit(client, expires_in=0.05)["id"] for _ in range(5)]
    time.sleep(0.1)
    assert (store.expire(2), store.expire(2), store.expire(2), store.expire(2)) == (2, 2, 1, 0)
    assert {status(client, i) for i in ids} == {("cancelled", EXPIRED_ERROR)}


def test_a_job_not_yet_expired_is_left_alone(client: TestClient, store: JobStore) -> None:
    job = submit(client, expires_in=60)
    assert store.expire() == 0
    (claimed,) = store.claim("w1", 1, ["default"])
    assert claimed.id == job["id"]


def past() -> str | None:
    return ms_to_rfc3339(round((time.time() - 60) * 1000))


def future(seconds: float) -> str | None:
    return ms_to_rfc3339(round((time.time() + seconds) * 1000))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": 12}, "expires_at"),
        ({"expires_at": "PAST"}, "expires_at"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"expires_in": 60, "expires_at": "FUTURE"}, "expires_at"),
        ({"expires_in": 30, "delay": 60}, "expires_in"),
        ({"expires_at": "FUTURE", "run_at": "LATER"}, "expires_at"),
    ],
)
def test_an_expiry_that_is_malformed_or_could_never_be_met_is_400_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, fields: dict[str, Any], field: str
) -> None:
    times = {"PAST": past(), "FUTURE": future(60), "LATER": future(120)}
    body = {
        "type": "echo",
        **{k: times.get(v, v) if isinstance(v, str) else v for k, v in fields.items()},
    }
    before = snapshot(redis_client)
    resp = client.simulate_post("/jobs", json=body)
    assert resp.status_code == 400
    assert (resp.json["error"]["code"], resp.json["error"]["field"]) == ("validation_error", field)
    assert snapshot(redis_client) == before


def test_the_sweeper_step_cancels_an_expired_job_in_a_paused_queue(
    client: TestClient, store: JobStore
) -> None:
    job = submit(client, expires_in=0.05)
    store.pause("default")
    time.sleep(0.1)
    sweeper_step(store, "w1")()
    assert status(client, job["id"]) == ("cancelled", EXPIRED_ERROR)


def test_an_expired_job_is_not_leased_to_an_http_consumer(client: TestClient) -> None:
    expired = submit(client, expires_in=0.05)
    fresh = submit(client)
    time.sleep(0.1)
    resp = client.simulate_post(
        "/leases", json={"queues": ["default"], "consumer": "c1", "count": 2}
    )
    assert [held["job"]["id"] for held in resp.json["leases"]] == [fresh["id"]]
    assert status(client, expired["id"]) == ("cancelled", EXPIRED_ERROR)
