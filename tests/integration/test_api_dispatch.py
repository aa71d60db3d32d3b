"""Submissions answered by waitress's loop thread, over real HTTP against a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from waitress.channel import HTTPChannel

from tests.integration.api_fixtures import LiveServer, submit
from tests.integration.test_api_longpoll import request
from workstream.api.app import create_app
from workstream.api.dispatch import INLINE_MAX_BODY_BYTES
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore

StartResponse = Callable[..., Any]


class ThreadRecorder:
    """WSGI middleware: which thread served each (method, path)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.threads: list[tuple[str, str, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        self.threads.append((method, path, threading.get_ident()))
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


@pytest.fixture
def api_store(settings: Settings) -> Iterator[JobStore]:
    client = connect(settings, max_connections=32)
    yield JobStore(client, settings)
    client.close()


def test_a_small_submission_is_served_by_the_loop_thread_and_the_rest_by_the_pool(
    settings: Settings, api_store: JobStore
) -> None:
    recorder = ThreadRecorder(create_app(settings, api_store))
    with LiveServer(recorder, threads=4) as server:
        status, body = request(server.url, "POST", "/jobs", {"type": "echo"})
        assert status == 201 and isinstance(body, dict)
        status, _ = request(server.url, "GET", f"/jobs/{body['id']}")
        assert status == 200
        large = {"type": "echo", "payload": {"blob": "x" * INLINE_MAX_BODY_BYTES}}
        status, _ = request(server.url, "POST", "/jobs", large)
        assert status == 201
        status, _ = request(server.url, "POST", "/jobs/batch", {"jobs": [{"type": "echo"}]})
        assert status == 201
        loop = server.loop_thread

    served_by_loop = [(method, path, ident == loop) for method, path, ident in recorder.threads]
    assert served_by_loop == [
        ("POST", "/jobs", True),
        ("GET", f"/jobs/{body['id']}", False),
        ("POST", "/jobs", False),
        ("POST", "/jobs/batch", False),
    ]


def test_submissions_are_answered_while_every_pool_thread_holds_a_long_poll(
    settings: Settings, api_store: JobStore
) -> None:
    job_id = submit(api_store)
    app = create_app(settings, api_store, waiters=2)
    with LiveServer(app, threads=2) as server:
        polls = [
            threading.Thread(target=request, args=(server.url, "GET", f"/jobs/{job_id}?wait=3"))
            for _ in range(2)
        ]
        for poll in polls:
            poll.start()
        time.sleep(0.5)  # both pool threads now wait on the job
        started = time.monotonic()
        status, body = request(server.url, "POST", "/jobs", {"type": "echo"}, timeout=10)
        answered_s = time.monotonic() - started
        for poll in polls:
            poll.join(timeout=10)

    assert status == 201 and isinstance(body, dict) and body["status"] == "pending"
    assert answered_s < 1.0  # not after the long-polls' 3 s


def test_an_inline_reply_leaves_in_one_send(
    settings: Settings, api_store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends: list[bytes] = []
    original = HTTPChannel.send

    def recording_send(channel: HTTPChannel, data: bytes, do_close: bool = True) -> int:
        sent: int = original(channel, data, do_close=do_close)
        sends.append(bytes(data[:sent]))
        return sent

    monkeypatch.setattr(HTTPChannel, "send", recording_send)
    with LiveServer(create_app(settings, api_store), threads=2) as server:
        status, body = request(server.url, "POST", "/jobs", {"type": "echo"})
    assert status == 201 and isinstance(body, dict)
    (reply,) = sends  # waitress alone sends the header and the body separately
    assert reply.startswith(b"HTTP/1.1 201") and body["id"].encode() in reply
