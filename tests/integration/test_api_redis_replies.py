"""Redis refusing work (OOM, BUSY, LOADING, READONLY, MASTERDOWN) answers 503 with Retry-After and
a stable code, never 500, and leaves no half-written job. A private redis-server per module: the
tests change its memory limit and keep it busy."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import falcon.testing
import pytest
import redis
from redis._parsers import _RESP2Parser

from tests.support.faults import keep_busy
from tests.support.redis_server import RedisServer, free_port
from workstream.api.app import create_app
from workstream.common.redis_conn import connect, unavailable_reason
from workstream.common.settings import Settings
from workstream.common.store import JobStore

TestClient = falcon.testing.TestClient


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    # busy-reply-threshold: other clients get BUSY after 100 ms of a running script.
    server = RedisServer(extra_args=("--busy-reply-threshold", "100")).start()
    yield server
    server.stop()


@pytest.fixture
def admin(private_redis: RedisServer) -> Iterator[redis.Redis]:
    client = private_redis.client()
    client.config_set("maxmemory", 0)
    client.flushall()
    yield client
    client.config_set("maxmemory", 0)
    client.close()


@pytest.fixture
def api(private_redis: RedisServer, admin: redis.Redis) -> Iterator[TestClient]:
    settings = Settings.from_environ({"REDIS_URL": private_redis.url})
    client = connect(settings)
    yield TestClient(create_app(settings, JobStore(client, settings)))
    client.close()


def _assert_503(resp: falcon.testing.Result, reason: str) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.json["error"]["code"] == "redis_unavailable"
    assert reason in resp.json["error"]["message"]
    assert int(resp.headers["Retry-After"]) >= 1


def _fill_memory(admin: redis.Redis) -> None:
    """maxmemory just under what is used, noeviction: every write is refused with OOM."""
    admin.set("ballast", "x" * 200_000)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", used - 100_000)


def test_a_submission_under_oom_answers_503_and_writes_nothing(
    api: TestClient, admin: redis.Redis
) -> None:
    _fill_memory(admin)
    _assert_503(api.simulate_post("/jobs", json={"type": "echo"}), "OOM")
    batch = {"jobs": [{"type": "echo"}, {"type": "echo", "queue": "other"}]}
    _assert_503(api.simulate_post("/jobs/batch", json=batch), "OOM")
    admin.config_set("maxmemory", 0)
    assert sorted(admin.keys()) == ["ballast"]


def test_a_request_while_a_script_keeps_redis_busy_answers_503(
    api: TestClient, admin: redis.Redis, private_redis: RedisServer
) -> None:
    started = threading.Event()

    def spin() -> None:
        with private_redis.client() as spinner:
            started.set()
            keep_busy(spinner, 1.5)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    started.wait(5)
    try:
        deadline = time.monotonic() + 1.0
        resp = api.simulate_post("/jobs", json={"type": "echo"})
        while resp.status_code == 201 and time.monotonic() < deadline:  # not busy yet
            resp = api.simulate_post("/jobs", json={"type": "echo"})
        _assert_503(resp, "BUSY")
        _assert_503(api.simulate_get("/queues"), "BUSY")
    finally:
        thread.join(10)
    assert not thread.is_alive()


def test_a_replica_cut_from_its_master_answers_503_not_500(
    api: TestClient, admin: redis.Redis
) -> None:
    admin.replicaof("127.0.0.1", free_port())  # a master that is not there
    try:
        _assert_503(api.simulate_post("/jobs", json={"type": "echo"}), "READONLY")
        admin.config_set("replica-serve-stale-data", "no")
        _assert_503(api.simulate_get("/queues"), "MASTERDOWN")
    finally:
        admin.replicaof("NO", "ONE")
        admin.config_set("replica-serve-stale-data", "yes")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM"),
        ("BUSY Redis is busy running a script.", "BUSY"),
        ("LOADING Redis is loading the dataset in memory", "LOADING"),
        ("READONLY You can't write against a read only replica.", "READONLY"),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
         "MASTERDOWN"),
    ],
)  # fmt: skip
def test_each_unavailable_reply_is_classified_by_its_first_word(reply: str, reason: str) -> None:
    # redis-py's own reply parser: some words become classes, BUSY stays a ResponseError.
    error = _RESP2Parser(socket_read_size=65536).parse_error(reply)
    assert unavailable_reason(error) == reason


def test_an_ordinary_error_reply_is_not_unavailability() -> None:
    assert unavailable_reason(redis.exceptions.ResponseError("ERR unknown command")) is None
    assert unavailable_reason(redis.exceptions.ResponseError("WRONGTYPE Operation")) is None
    assert unavailable_reason(ValueError("BUSY")) is None
