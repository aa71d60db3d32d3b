"""The API's waitress server (api.dispatch) over real HTTP against a real Redis."""

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
from workstream.api.dispatch import adjustments
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


class Gate:
    """WSGI app whose requests wait until `release` is set (a request in flight)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self.entered.set()
        self.release.wait(timeout=10)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "6")])
        return [b'"done"']


@pytest.fixture
def api_store(settings: Settings) -> Iterator[JobStore]:
    client = connect(settings, max_connections=32)
    yield JobStore(client, settings)
    client.close()


def test_every_request_is_served_by_a_pool_thread_never_by_the_loop_thread(
    settings: Settings, api_store: JobStore
) -> None:
    recorder = ThreadRecorder(create_app(settings, api_store))
    with LiveServer(recorder, threads=4) as server:
        status, body = request(server.url, "POST", "/jobs", {"type": "echo"})
        assert status == 201 and isinstance(body, dict)
        status, _ = request(server.url, "POST", "/job", {"type": "echo"})
        assert status == 201
        status, _ = request(server.url, "GET", f"/jobs/{body['id']}")
        assert status == 200
        status, _ = request(server.url, "POST", "/jobs/batch", {"jobs": [{"type": "echo"}]})
        assert status == 201
        loop = server.loop_thread

    assert len(recorder.threads) == 4
    assert [path for _, path, ident in recorder.threads if ident == loop] == []


def test_submissions_are_answered_while_long_polls_hold_every_waiter(
    settings: Settings, api_store: JobStore
) -> None:
    job_id = submit(api_store)
    app = create_app(settings, api_store, waiters=2)
    with LiveServer(app, threads=4) as server:
        polls = [
            threading.Thread(target=request, args=(server.url, "GET", f"/jobs/{job_id}?wait=3"))
            for _ in range(2)
        ]
        for poll in polls:
            poll.start()
        time.sleep(0.5)  # both waiters now hold a pool thread each
        started = time.monotonic()
        status, body = request(server.url, "POST", "/jobs", {"type": "echo"}, timeout=10)
        answered_s = time.monotonic() - started
        for poll in polls:
            poll.join(timeout=10)

    assert status == 201 and isinstance(body, dict) and body["status"] == "pending"
    assert answered_s < 1.0  # not after the long-polls' 3 s


def served(settings: Settings, threads: int) -> dict[str, Any]:
    """The adjustments workstream-api serves with, on `threads` threads."""
    return {**adjustments(settings, connections=100), "threads": threads}


def test_stop_lets_the_request_in_flight_finish_and_answers_it(settings: Settings) -> None:
    gate = Gate()
    server = LiveServer(gate, **served(settings, threads=2))
    answers: list[Any] = []
    with server:
        client = threading.Thread(target=lambda: answers.append(request(server.url, "GET", "/")))
        client.start()
        assert gate.entered.wait(timeout=10)
        server.server.stop()  # the loop ends now; the request is still being served
        gate.release.set()
        client.join(timeout=15)
    assert answers == [(200, "done")]


def test_a_reply_leaves_in_one_send(
    settings: Settings, api_store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Observed, not changed: waitress's own send, recorded. With send_bytes = 1 (waitress's
    # default) a reply's header and body leave in two sends and wake the client twice.
    sends: list[bytes] = []
    original = HTTPChannel.send

    def recording_send(channel: HTTPChannel, data: bytes, do_close: bool = True) -> int:
        sent: int = original(channel, data, do_close=do_close)
        sends.append(bytes(data[:sent]))
        return sent

    monkeypatch.setattr(HTTPChannel, "send", recording_send)
    app = create_app(settings, api_store)
    with LiveServer(app, **served(settings, threads=2)) as server:
        status, body = request(server.url, "POST", "/jobs", {"type": "echo"})
    assert status == 201 and isinstance(body, dict)
    (reply,) = sends
    assert reply.startswith(b"HTTP/1.1 201") and body["id"].encode() in reply
