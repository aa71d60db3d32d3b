"""API fixtures shared by tests/integration/test_api_*.py (import them into each module)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import falcon
import falcon.testing
import pytest
import redis

from workstream.api.app import create_app
from workstream.api.dispatch import ApiServer, adjustments
from workstream.api.prefork import listening_socket
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore

App = falcon.App[falcon.Request, falcon.Response]


@pytest.fixture
def app(settings: Settings, store: JobStore) -> App:
    return create_app(settings, store)


@pytest.fixture
def client(app: App) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(app)


@pytest.fixture
def make_client(
    redis_server: Any, redis_client: redis.Redis
) -> Callable[..., falcon.testing.TestClient]:
    """A client for an app built with extra settings, e.g. make_client(API_TOKEN="t")."""

    def build(**env: str) -> falcon.testing.TestClient:
        settings = Settings.from_environ({"REDIS_URL": redis_server.url, **env})
        return falcon.testing.TestClient(create_app(settings, JobStore(redis_client, settings)))

    return build


def submit(store: JobStore, **fields: Any) -> str:
    return store.enqueue(JobSpec(**{"type": "echo", **fields})).job_id


def make_failed(store: JobStore, queue: str = "default") -> str:
    job_id = submit(store, queue=queue, max_attempts=1)
    (claimed,) = store.claim("w1", 1, [queue])
    store.fail("w1", claimed, "boom", permanent=True)
    return job_id


def make_completed(store: JobStore, result: str = '{"ok": true}') -> str:
    job_id = submit(store)
    (claimed,) = store.claim("w1", 1, ["default"])
    store.complete("w1", claimed, result)
    return job_id


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The API's waitress server (api.dispatch) in a thread of this process, whose loop is
    that thread, on a free loopback port."""

    def __init__(self, app: Any, threads: int, **adjustments: Any) -> None:
        sock = listening_socket("127.0.0.1", 0)
        given = {"connection_limit": 2000, **adjustments, "threads": threads}
        self.server = ApiServer(app, sock, **given)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self._thread = threading.Thread(target=self.server.serve, daemon=True)

    @property
    def loop_thread(self) -> int | None:
        return self._thread.ident

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # The loop ends and waits for the pool's requests, then every channel is closed.
        self.server.stop()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "waitress did not stop"
        self.server.close()


@pytest.fixture
def live_server(settings: Settings, redis_client: redis.Redis) -> Iterator[LiveServer]:
    # Connected as workstream-api connects: a pool as large as the thread pool (redis-py's
    # default pool stops at 100 connections and then raises MaxConnectionsError).
    client = connect(settings, max_connections=settings.api_threads + 8)
    store = JobStore(client, settings)
    app = create_app(settings, store)
    try:
        served = adjustments(settings, connections=2000)
        with LiveServer(app, **served) as server:
            yield server
    finally:
        client.close()
