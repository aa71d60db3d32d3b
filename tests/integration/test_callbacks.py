"""Completion callbacks: a job with callback_url owes, when it ends (completed, failed for good,
cancelled pending or running, expired), an `http` job that POSTs its final record there,
created in the same script as the transition. Real loopback receivers; the worker's
HTTP_JOB_ALLOWED_NETWORKS opens 127.0.0.1/32 only. Also Retry-After: a 429/503's wait becomes
the delay of the next attempt, capped by RETRY_AFTER_MAX."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from tests.support.callback_receiver import CallbackReceiver, free_port
from tests.support.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.common import scripts
from workstream.common.jobs import Job, JobSpec
from workstream.common.serialization import rfc3339_to_ms
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker import http_job
from workstream.worker.worker import Worker


@pytest.fixture
def receivers() -> Iterator[Callable[..., CallbackReceiver]]:
    started: list[CallbackReceiver] = []

    def start(**options: Any) -> CallbackReceiver:
        receiver = CallbackReceiver(**options)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    # The http handler reads HTTP_JOB_ALLOWED_NETWORKS and WEBHOOK_SECRET from the worker's
    # environment, once.
    values = {"HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOK_SECRET": "s3"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    http_job._config.cache_clear()
    yield values
    http_job._config.cache_clear()


def _settings(redis_server: RedisServer, **extra: str) -> Settings:
    env = {
        "RETRY_BACKOFF": "0s",
        "MAX_ATTEMPTS": "2",
        "HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.1/32",
        **extra,
    }
    return make_settings(redis_server.url, **env)


@pytest.fixture
def store(redis_server: RedisServer, redis_client: redis.Redis, env: dict[str, str]) -> JobStore:
    return JobStore(redis_client, _settings(redis_server))


def _drain(store: JobStore, timeout_s: float = 20) -> None:
    worker = Worker(store.settings, store)
    runner = threading.Thread(target=worker.run, kwargs={"until_idle": True}, daemon=True)
    runner.start()
    runner.join(timeout_s)
    if runner.is_alive():
        worker.shutdown_requested.set()
        runner.join(10)
        raise AssertionError("worker did not drain in time")


def _run_until(store: JobStore, done: Callable[[], bool], timeout_s: float = 15) -> None:
    worker = Worker(store.settings, store)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "not reached in time"
            time.sleep(0.02)
    finally:
        worker.shutdown_requested.set()
        runner.join(10)


def _job(store: JobStore, job_id: str) -> Job:
    job = store.get_job(job_id)
    assert job is not None
    return job


def _verify(secret: str, header: str, body: bytes) -> bool:
    """The README's receiver-side check."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), fields["v1"])


# -- each way a job ends -----------------------------------------------------------------------


def test_a_completed_job_posts_its_final_record_signed(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    spec = JobSpec(type="echo", payload={"n": 1}, callback_url=receiver.url())
    job_id = store.enqueue(spec).job_id
    _drain(store)
    job = _job(store, job_id)
    assert job.status is JobStatus.COMPLETED and job.callback_job_id is not None
    [delivery] = receiver.deliveries
    assert delivery.record == job.to_json()  # the same JSON as GET /jobs/{id}
    assert delivery.record["result"] == {"n": 1}
    assert delivery.job_id == job.callback_job_id
    assert _verify("s3", delivery.signature, delivery.raw)
    callback = _job(store, job.callback_job_id)
    assert (callback.type, callback.queue, callback.status) == ("http", "default", "completed")
    assert callback.callback_for == job_id and callback.callback_url is None


def test_a_job_failed_after_its_last_attempt_posts_once(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="fail", callback_url=receiver.url())).job_id
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"], record["attempts"]) == (job_id, "failed", 2)
    assert "failed on request (attempt 2)" in record["error"]
    assert [entry["outcome"] for entry in record["history"]] == ["failed", "failed"]


def test_a_cancelled_pending_job_posts_its_record(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="echo", delay=60, callback_url=receiver.url())).job_id
    store.cancel(job_id)
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"]) == (job_id, "cancelled")


def test_a_cancelled_running_job_posts_its_record(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="echo", callback_url=receiver.url())).job_id
    (claimed,) = store.claim("w1", 1, ["default"])
    store.cancel(job_id)  # asked to stop; the run then returns
    store.complete_many("w1", [(claimed, '"late"')], 0, ())
    assert _job(store, job_id).status is JobStatus.CANCELLED
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"], record["error"]) == (
        job_id,
        "cancelled",
        "cancelled while running",
    )


def test_an_expired_job_posts_its_record(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    job_id = store.enqueue(
        JobSpec(type="echo", delay=1, expires_in=1.05, callback_url=receiver.url())
    ).job_id
    time.sleep(1.1)
    store.expire()  # the sweeper's expire.lua: still scheduled, never started
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"], record["error"]) == (job_id, "cancelled", "expired")


def test_a_claim_meeting_an_expired_job_owes_its_callback_in_the_same_call(
    store: JobStore, receivers: Callable[..., CallbackReceiver], redis_client: redis.Redis
) -> None:
    receiver = receivers()
    job_id = store.enqueue(
        JobSpec(type="echo", expires_in=0.05, callback_url=receiver.url())
    ).job_id
    time.sleep(0.1)
    # The claim cancels it, never starts it, and the same claim goes on to start its callback.
    [started] = store.claim("w1", 1, ["default"])
    job = _job(store, job_id)
    assert (job.status, job.error) == (JobStatus.CANCELLED, "expired")
    assert started.id == job.callback_job_id and started.type == "http"


# -- never lost, never doubled ---------------------------------------------------------------


def test_the_transition_and_its_callback_job_are_written_by_one_script_call(
    store: JobStore, redis_client: redis.Redis, receivers: Callable[..., CallbackReceiver]
) -> None:
    """fail.lua called directly: after that one call the job is failed and its callback job
    exists, queued, carrying the record; the same call sent again creates nothing more."""
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="echo", max_attempts=1, callback_url=receiver.url())).job_id
    (claimed,) = store.claim("w1", 1, ["default"])
    keys = scripts.keys_for(scripts.SCRIPTS["fail"].keys, store.keys, job_id=job_id)
    args = [store.keys.prefix, job_id, claimed.lease, "boom", 1, 0, 0, 0.5, 100, "w1"]
    assert scripts.call(redis_client, "fail", keys, args)[:2] == ["ok", "failed"]
    callback_id = redis_client.hget(store.keys.job(job_id), "callback_job_id")
    assert isinstance(callback_id, str)
    hashes = redis_client.hgetall(store.keys.job(callback_id))
    assert (hashes["status"], hashes["type"], hashes["callback_for"]) == ("pending", "http", job_id)
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [callback_id]
    assert redis_client.zscore(store.keys.jobs, callback_id) is not None
    assert scripts.call(redis_client, "fail", keys, args)[:2] == ["ok", "failed"]  # a resend
    assert redis_client.llen(store.keys.queue("default")) == 1
    assert redis_client.zcard(store.keys.status(JobStatus.PENDING)) == 1


def test_a_callback_still_carries_the_record_after_the_job_is_deleted(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="echo", delay=60, callback_url=receiver.url())).job_id
    store.cancel(job_id)
    store.delete(job_id)
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"]) == (job_id, "cancelled")


def test_a_callback_owes_no_callback_and_a_full_queue_does_not_refuse_it(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    env: dict[str, str],
    receivers: Callable[..., CallbackReceiver],
) -> None:
    store = JobStore(redis_client, _settings(redis_server, JOB_QUEUE_CAPACITY="1"))
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="echo", callback_url=receiver.url())).job_id
    (claimed,) = store.claim("w1", 1, ["default"])
    filler = store.enqueue(JobSpec(type="echo", delay=60)).job_id  # the queue is now full
    store.complete("w1", claimed, "1")
    callback_id = _job(store, job_id).callback_job_id
    assert callback_id is not None and _job(store, callback_id).status is JobStatus.PENDING
    store.cancel(filler)  # so that the worker drains
    _drain(store)
    assert len(receiver.deliveries) == 1
    callback = _job(store, callback_id)
    assert callback.status is JobStatus.COMPLETED and callback.callback_job_id is None


def test_a_failed_job_retried_by_an_operator_owes_a_second_callback(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    job_id = store.enqueue(JobSpec(type="fail", callback_url=receiver.url())).job_id
    _drain(store)
    first = _job(store, job_id).callback_job_id
    store.retry(job_id)
    _drain(store)
    second = _job(store, job_id).callback_job_id
    assert first != second and [d.job_id for d in receiver.deliveries] == [first, second]


def test_a_receiver_down_for_a_while_gets_every_callback_once_it_returns(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    env: dict[str, str],
    receivers: Callable[..., CallbackReceiver],
) -> None:
    settings = _settings(redis_server, RETRY_BACKOFF="100ms", RETRY_BACKOFF_MAX="500ms")
    store = JobStore(redis_client, settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}/done"
    ids = [
        store.enqueue(JobSpec(type="echo", payload=i, callback_url=url)).job_id for i in range(5)
    ]
    worker = Worker(settings, store)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until every callback failed at least once
            callbacks = [_job(store, i).callback_job_id for i in ids]
            if all(c and _job(store, c).attempts >= 2 for c in callbacks):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("callbacks were not attempted while the receiver was down")
        receiver = receivers(port=port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(receiver.deliveries) < len(ids):
            time.sleep(0.05)
    finally:
        worker.shutdown_requested.set()
        runner.join(10)
    assert sorted(r["id"] for r in receiver.records()) == sorted(ids)


# -- refused at submission -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("callback_url", "code"),
    [
        ("http://127.0.0.2:9/done", "target_forbidden"),
        ("http://169.254.169.254/latest", "target_forbidden"),
        ("http://[::1]/x", "target_forbidden"),
        ("ftp://example.com/x", "invalid_url"),
        ("http://user:pw@example.com/", "invalid_url"),
        (42, "invalid_url"),
    ],
)
def test_a_bad_or_forbidden_callback_url_is_refused_and_nothing_is_written(
    store: JobStore, redis_client: redis.Redis, callback_url: Any, code: str
) -> None:
    client = falcon.testing.TestClient(create_app(store.settings, store))
    before = redis_client.dbsize()
    resp = client.simulate_post("/jobs", json={"type": "echo", "callback_url": callback_url})
    assert (resp.status_code, resp.json["error"]["code"]) == (400, code)
    assert resp.json["error"]["field"] == "callback_url"
    batch = {"jobs": [{"type": "echo"}, {"type": "echo", "callback_url": callback_url}]}
    resp = client.simulate_post("/jobs/batch", json=batch)
    assert (resp.status_code, resp.json["error"]["code"]) == (400, code)
    assert resp.json["error"]["field"] == "jobs[1].callback_url"
    assert redis_client.dbsize() == before


def test_the_api_accepts_an_allowed_callback_url_and_shows_it(store: JobStore) -> None:
    client = falcon.testing.TestClient(create_app(store.settings, store))
    url = "http://127.0.0.1:9/done"
    resp = client.simulate_post("/jobs", json={"type": "echo", "callback_url": url})
    assert resp.status_code == 201
    assert (resp.json["callback_url"], resp.json["callback_job_id"]) == (url, None)


def test_an_idempotent_resubmission_with_another_callback_url_is_a_conflict(
    store: JobStore,
) -> None:
    client = falcon.testing.TestClient(create_app(store.settings, store))
    body = {"type": "echo", "idempotency_key": "k1", "callback_url": "http://127.0.0.1:9/a"}
    assert client.simulate_post("/jobs", json=body).status_code == 201
    other = {**body, "callback_url": "http://127.0.0.1:9/b"}
    resp = client.simulate_post("/jobs", json=other)
    assert (resp.status_code, resp.json["error"]["code"]) == (422, "idempotency_conflict")


# -- Retry-After -----------------------------------------------------------------------------


def _retry_delay_s(
    store: JobStore, receivers: Callable[..., CallbackReceiver], after: str
) -> float:
    receiver = receivers(statuses=(429,), headers={"Retry-After": after})
    job_id = store.enqueue(
        JobSpec(type="http", max_attempts=3, payload={"url": receiver.url()})
    ).job_id
    _run_until(store, lambda: _job(store, job_id).status is JobStatus.SCHEDULED)
    job = _job(store, job_id)
    assert job.attempts == 1 and len(receiver.deliveries) == 1
    assert job.run_at is not None and job.history
    return (job.run_at - rfc3339_to_ms(job.history[-1]["ended_at"])) / 1000


def test_a_retry_after_in_seconds_sets_the_next_attempts_delay(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    """RETRY_BACKOFF is 0 s here: without the Retry-After the job would be pending again."""
    assert 29.9 <= _retry_delay_s(store, receivers, "30") <= 30.1


def test_a_retry_after_as_an_http_date_sets_the_next_attempts_delay(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 115 <= _retry_delay_s(store, receivers, when) <= 121


def test_a_retry_after_longer_than_retry_after_max_waits_the_maximum(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    env: dict[str, str],
    receivers: Callable[..., CallbackReceiver],
) -> None:
    store = JobStore(redis_client, _settings(redis_server, RETRY_AFTER_MAX="45s"))
    assert 44.9 <= _retry_delay_s(store, receivers, "86400") <= 45.1


def test_a_job_created_cancelled_because_its_parent_failed_owes_its_callback(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    parent = store.enqueue(JobSpec(type="fail", max_attempts=1)).job_id
    _drain(store)
    child = store.enqueue(
        JobSpec(type="echo", depends_on=(parent,), callback_url=receiver.url())
    ).job_id
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"]) == (child, "cancelled")
    assert record["error"] == f"parent_failed: {parent}"


def test_a_job_cancelled_because_its_parent_failed_later_owes_its_callback(
    store: JobStore, receivers: Callable[..., CallbackReceiver]
) -> None:
    receiver = receivers()
    parent = store.enqueue(JobSpec(type="fail", max_attempts=1)).job_id
    child = store.enqueue(
        JobSpec(type="echo", depends_on=(parent,), callback_url=receiver.url())
    ).job_id
    _drain(store)
    [record] = receiver.records()
    assert (record["id"], record["status"]) == (child, "cancelled")


def test_the_worker_checks_the_callback_url_again_at_delivery(
    store: JobStore, redis_client: redis.Redis
) -> None:
    """Stored without the API's check (or allowed by a wider API setting): the worker's guard
    still refuses 127.0.0.2 at delivery; the callback fails at once, its target uncontacted."""
    listener = CallbackReceiver()
    try:
        url = f"http://127.0.0.2:{listener.port}/done"
        job_id = store.enqueue(JobSpec(type="echo", callback_url=url)).job_id
        _drain(store)
        callback_id = _job(store, job_id).callback_job_id
        assert callback_id is not None
        callback = _job(store, callback_id)
        assert (callback.status, callback.attempts) == (JobStatus.FAILED, 1)
        assert (callback.error or "").startswith("target_forbidden: 127.0.0.2 is loopback")
        assert listener.deliveries == []
    finally:
        listener.stop()
