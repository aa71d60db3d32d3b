"""The built-in `http` job type against real HTTP receivers on loopback.

Receivers are http.server threads on free loopback ports. Delivery tests open 127.0.0.1/32 (as
HTTP_JOB_ALLOWED_NETWORKS would); SSRF tests run with the default settings and check both that
the listener on the refused address saw nothing and that no connection was even attempted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.common.jobs import JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker import http_job
from workstream.worker.http_job import (
    HttpJobConfig,
    HttpNetworkError,
    HttpRejected,
    HttpStatusError,
    TargetForbidden,
    deliver,
)
from workstream.worker.registry import JobContext, PermanentError
from workstream.worker.worker import Worker

ALLOW_LOOPBACK = HttpJobConfig(allowed_networks=(ip_network("127.0.0.1/32"),))
DEFAULTS = HttpJobConfig()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drip_s: float = 0.0  # a pause before each byte of the body


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A threaded HTTP server that answers from a script of replies (the last one repeats)
    and records every request it gets."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        replies: list[Reply] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.replies = replies or [Reply()]
        self.seen: list[Seen] = []
        self.release = threading.Event()  # ends a delayed reply at stop()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                reply = receiver.replies[min(len(receiver.seen), len(receiver.replies)) - 1]
                if reply.delay_s:
                    receiver.release.wait(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if not reply.drip_s:
                        self.wfile.write(reply.body)
                    for byte in reply.body if reply.drip_s else b"":
                        if receiver.release.wait(reply.drip_s):
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client gave up (a timeout test): nothing to answer
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True
            block_on_close = False

        self.server = Server((host, 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.host = host
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(
        *replies: Reply, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> Receiver:
        receiver = Receiver(host, list(replies) or None, tls)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a connection was attempted to (httpcore connects through this)."""
    attempted: list[Any] = []
    real = socket.create_connection

    def spy(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempted.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return attempted


def _ctx(attempt: int = 1, timeout_s: float = 10.0) -> JobContext:
    return JobContext(
        job_id="job-1",
        job_type="http",
        queue="default",
        attempt=attempt,
        max_attempts=3,
        worker_id="worker-1",
        timeout_s=timeout_s,
        redis=redis.Redis(port=1),  # never used: keys=None, so nothing is asked of Redis
        log=logging.getLogger("test"),
    )


# -- delivery ----------------------------------------------------------------------------------


def test_a_2xx_completes_with_status_headers_and_body(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(201, b'{"id": 7}', {"Content-Type": "application/json"}))
    payload = {"url": receiver.url("/hook?a=1"), "body": {"x": 1}, "headers": {"X-Key": "k"}}
    result = deliver(payload, _ctx(attempt=2), ALLOW_LOOPBACK)
    assert result["status"] == 201 and result["body"] == '{"id": 7}'
    assert result["headers"]["content-type"] == "application/json"
    assert result["truncated"] is False
    [seen] = receiver.seen
    assert (seen.method, seen.path, json.loads(seen.body)) == ("POST", "/hook?a=1", {"x": 1})
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-key"] == "k"
    assert seen.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert seen.headers["workstream-job-id"] == "job-1"
    assert seen.headers["workstream-attempt"] == "2"
    assert "workstream-signature" not in seen.headers  # no WEBHOOK_SECRET, no signature


def test_a_text_body_is_sent_as_text_with_the_method_asked(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    deliver({"url": receiver.url(), "method": "put", "body": "héllo"}, _ctx(), ALLOW_LOOPBACK)
    [seen] = receiver.seen
    assert seen.method == "PUT" and seen.body == "héllo".encode()
    assert seen.headers["content-type"] == "text/plain; charset=utf-8"


def test_a_long_response_body_is_cut_at_the_configured_size(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(200, b"x" * 100_000))
    config = HttpJobConfig(allowed_networks=ALLOW_LOOPBACK.allowed_networks, max_response_bytes=10)
    result = deliver({"url": receiver.url(), "method": "GET"}, _ctx(), config)
    assert result["body"] == "x" * 10 and result["truncated"] is True


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_a_5xx_408_or_429_fails_the_attempt_to_be_retried(
    receiver_factory: Callable[..., Receiver], status: int
) -> None:
    receiver = receiver_factory(Reply(status, b"busy"))
    with pytest.raises(HttpStatusError, match=f"^http_status {status}: busy") as info:
        deliver({"url": receiver.url()}, _ctx(), ALLOW_LOOPBACK)
    assert not isinstance(info.value, PermanentError)
    assert len(receiver.seen) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_any_other_4xx_fails_for_good(
    receiver_factory: Callable[..., Receiver], status: int
) -> None:
    receiver = receiver_factory(Reply(status, b"no such hook"))
    with pytest.raises(HttpRejected, match=f"^http_status {status}: no such hook") as info:
        deliver({"url": receiver.url()}, _ctx(), ALLOW_LOOPBACK)
    assert isinstance(info.value, PermanentError)


def test_a_short_retry_after_is_waited_out_within_the_attempt(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(429, b"slow down", {"Retry-After": "1"}), Reply(200))
    started = time.monotonic()
    result = deliver({"url": receiver.url()}, _ctx(), ALLOW_LOOPBACK)
    assert result["status"] == 200 and len(receiver.seen) == 2
    assert time.monotonic() - started >= 0.95


def test_a_retry_after_longer_than_the_attempt_can_wait_fails_the_attempt(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(429, b"later", {"Retry-After": "120"}))
    with pytest.raises(HttpStatusError, match=r"^http_status 429 \(Retry-After 120"):
        deliver({"url": receiver.url()}, _ctx(), ALLOW_LOOPBACK)
    assert len(receiver.seen) == 1


def _verify(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """The README's receiver-side check, as a receiver would write it."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(expected.hexdigest(), fields["v1"])


def test_with_a_webhook_secret_the_receiver_verifies_the_signature(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory()
    config = HttpJobConfig(allowed_networks=ALLOW_LOOPBACK.allowed_networks, webhook_secret="s3")
    deliver({"url": receiver.url(), "body": {"order": 42}}, _ctx(), config)
    [seen] = receiver.seen
    header = seen.headers["workstream-signature"]
    assert _verify("s3", header, seen.body)
    assert not _verify("other", header, seen.body)
    assert not _verify("s3", header, seen.body + b" ")


def test_every_request_is_signed_over_the_body_it_carries(
    receiver_factory: Callable[..., Receiver],
) -> None:
    """A 303 turns the POST into a GET without body: the signature there is over no body."""
    final = receiver_factory()
    first = receiver_factory(Reply(303, b"", {"Location": final.url()}))
    config = HttpJobConfig(allowed_networks=ALLOW_LOOPBACK.allowed_networks, webhook_secret="s3")
    deliver({"url": first.url(), "body": {"order": 42}}, _ctx(), config)
    for seen in (*first.seen, *final.seen):
        assert _verify("s3", seen.headers["workstream-signature"], seen.body)
    assert final.seen[0].body == b""


def test_a_receiver_slower_than_the_timeout_fails_the_attempt_as_a_timeout(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(delay_s=5))
    started = time.monotonic()
    with pytest.raises(HttpNetworkError, match=r"^timeout: "):
        deliver({"url": receiver.url(), "timeout": 0.3}, _ctx(), ALLOW_LOOPBACK)
    assert time.monotonic() - started < 2


def test_a_body_sent_slower_than_the_timeout_allows_is_cut_off_as_a_timeout(
    receiver_factory: Callable[..., Receiver],
) -> None:
    """Each byte comes well within the per-read timeout; the whole body does not."""
    receiver = receiver_factory(Reply(200, b"x" * 40, drip_s=0.05))
    started = time.monotonic()
    with pytest.raises(HttpNetworkError, match=r"^timeout: "):
        deliver({"url": receiver.url(), "timeout": 0.5}, _ctx(), ALLOW_LOOPBACK)
    assert time.monotonic() - started < 1.5


def test_a_body_that_cannot_be_decoded_fails_the_attempt_to_be_retried(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(200, b"not gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(HttpNetworkError, match=r"^network_error: .*DecodingError"):
        deliver({"url": receiver.url()}, _ctx(), ALLOW_LOOPBACK)


def test_a_refused_connection_fails_the_attempt_to_be_retried() -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with pytest.raises(HttpNetworkError, match=r"^network_error: "):
            deliver({"url": url}, _ctx(), ALLOW_LOOPBACK)


def test_an_allowed_redirect_is_followed_after_the_same_check(
    receiver_factory: Callable[..., Receiver],
) -> None:
    final = receiver_factory(Reply(200, b"landed"))
    first = receiver_factory(Reply(303, b"", {"Location": final.url("/landing")}))
    result = deliver({"url": first.url(), "body": {"a": 1}}, _ctx(), ALLOW_LOOPBACK)
    assert result["body"] == "landed"
    [seen] = final.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/landing", b"")


def test_a_redirect_loop_stops_after_the_redirect_limit(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(Reply(302, b"", {"Location": "/again"}))
    with pytest.raises(HttpRejected, match=r"^too_many_redirects"):
        deliver({"url": receiver.url(), "method": "GET"}, _ctx(), ALLOW_LOOPBACK)
    assert len(receiver.seen) == http_job.MAX_REDIRECTS + 1


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize(("served_as", "ok"), [("hooks.test", True), ("other.test", False)])
def test_https_goes_to_the_checked_address_and_verifies_the_name(
    receiver_factory: Callable[..., Receiver],
    connections: list[Any],
    tmp_path: Path,
    served_as: str,
    ok: bool,
) -> None:
    """The connection is pinned to the resolved address, while TLS (SNI and the certificate
    check) and Host still use the name: a certificate for another name is refused."""
    cert, key = _certificate(tmp_path, served_as)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    receiver = receiver_factory(Reply(200, b"secure"), tls=server_tls)
    config = HttpJobConfig(
        allowed_networks=ALLOW_LOOPBACK.allowed_networks,
        resolver=lambda host, port: ["127.0.0.1"],
        tls_verify=ssl.create_default_context(cafile=str(cert)),
    )
    payload = {"url": f"https://hooks.test:{receiver.port}/h"}
    if ok:
        assert deliver(payload, _ctx(), config)["body"] == "secure"
        assert receiver.seen[0].headers["host"] == f"hooks.test:{receiver.port}"
    else:
        with pytest.raises(HttpNetworkError, match="CERTIFICATE_VERIFY_FAILED"):
            deliver(payload, _ctx(), config)
        assert receiver.seen == []
    assert connections == [("127.0.0.1", receiver.port)]


# -- SSRF, default settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "localhost",  # a name that resolves to loopback
        "2130706433",  # decimal
        "0177.0.0.1",  # octal
        "0x7f.0.0.1",  # hex
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::ffff:7f00:1]",
    ],
)
def test_loopback_in_any_spelling_is_refused_and_never_contacted(
    receiver_factory: Callable[..., Receiver], connections: list[Any], spelling: str
) -> None:
    receiver = receiver_factory()
    url = f"http://{spelling}:{receiver.port}/hook"
    with pytest.raises(TargetForbidden, match=r"^target_forbidden: .*loopback"):
        deliver({"url": url}, _ctx(), DEFAULTS)
    assert receiver.seen == [] and connections == []


def test_ipv6_loopback_is_refused_and_never_contacted(
    receiver_factory: Callable[..., Receiver], connections: list[Any]
) -> None:
    receiver = receiver_factory(host="::1")
    with pytest.raises(TargetForbidden, match=r"^target_forbidden: ::1 is loopback"):
        deliver({"url": receiver.url()}, _ctx(), DEFAULTS)
    assert receiver.seen == [] and connections == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4:8080/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fd00::1]/", "private"),
        ("http://[fc00::5]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("https://100.64.0.1/", "not globally routable"),
    ],
)
def test_private_link_local_and_reserved_targets_are_refused_without_a_connection(
    connections: list[Any], url: str, reason: str
) -> None:
    with pytest.raises(TargetForbidden, match=f"^target_forbidden: .* is {reason}"):
        deliver({"url": url}, _ctx(), DEFAULTS)
    assert connections == []


def test_a_name_resolving_to_a_private_address_is_refused(connections: list[Any]) -> None:
    config = HttpJobConfig(resolver=lambda host, port: ["192.168.7.7"])
    with pytest.raises(TargetForbidden, match=r"resolves to 192\.168\.7\.7, which is private"):
        deliver({"url": "https://hooks.example.com/"}, _ctx(), config)
    assert connections == []


def test_a_redirect_to_a_forbidden_address_is_refused_and_that_listener_gets_nothing(
    receiver_factory: Callable[..., Receiver], connections: list[Any]
) -> None:
    forbidden = receiver_factory(host="127.0.0.2")  # loopback, outside 127.0.0.1/32
    allowed = receiver_factory(Reply(302, b"", {"Location": forbidden.url("/steal")}))
    with pytest.raises(TargetForbidden, match=r"^target_forbidden: 127\.0\.0\.2 is loopback"):
        deliver({"url": allowed.url()}, _ctx(), ALLOW_LOOPBACK)
    assert len(allowed.seen) == 1 and forbidden.seen == []
    assert [address[0] for address in connections] == ["127.0.0.1"]


def test_the_connection_goes_to_the_address_that_was_checked(
    receiver_factory: Callable[..., Receiver], connections: list[Any]
) -> None:
    """A second lookup could answer differently (DNS rebinding): the name is resolved once,
    and the request goes to that address with the name in Host."""
    receiver = receiver_factory()
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    config = HttpJobConfig(
        allowed_networks=ALLOW_LOOPBACK.allowed_networks,
        resolver=lambda host, port: next(answers),
    )
    deliver({"url": f"http://hooks.example.com:{receiver.port}/x"}, _ctx(), config)
    assert connections == [("127.0.0.1", receiver.port)]
    assert receiver.seen[0].headers["host"] == f"hooks.example.com:{receiver.port}"


# -- through a worker: retries with backoff, permanent failures --------------------------------


@pytest.fixture
def worker_store(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Worker, JobStore]]:
    # The handler reads HTTP_JOB_ALLOWED_NETWORKS from the worker's environment, once.
    monkeypatch.setenv("HTTP_JOB_ALLOWED_NETWORKS", "127.0.0.1/32")
    http_job._config.cache_clear()
    settings = make_settings(redis_server.url, RETRY_BACKOFF="0s", MAX_ATTEMPTS="3")
    store = JobStore(redis_client, settings)
    yield Worker(settings, store), store
    http_job._config.cache_clear()


def _drain(worker: Worker, timeout_s: float = 20) -> None:
    runner = threading.Thread(target=worker.run, kwargs={"until_idle": True}, daemon=True)
    runner.start()
    runner.join(timeout_s)
    if runner.is_alive():
        worker.shutdown_requested.set()
        runner.join(10)
        raise AssertionError("worker did not drain in time")


def test_a_job_answered_500_then_200_completes_on_its_second_attempt(
    worker_store: tuple[Worker, JobStore], receiver_factory: Callable[..., Receiver]
) -> None:
    worker, store = worker_store
    receiver = receiver_factory(Reply(500, b"oops"), Reply(200, b"done"))
    job_id = store.enqueue(JobSpec(type="http", payload={"url": receiver.url()})).job_id
    _drain(worker)
    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.attempts == 2
    assert job.result is not None and job.result["body"] == "done"
    assert [s.headers["workstream-attempt"] for s in receiver.seen] == ["1", "2"]


def test_a_job_answered_429_without_retry_after_is_retried(
    worker_store: tuple[Worker, JobStore], receiver_factory: Callable[..., Receiver]
) -> None:
    worker, store = worker_store
    receiver = receiver_factory(Reply(429, b"busy"), Reply(204, b""))
    job_id = store.enqueue(JobSpec(type="http", payload={"url": receiver.url()})).job_id
    _drain(worker)
    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.attempts == 2


def test_a_job_answered_404_fails_after_one_attempt(
    worker_store: tuple[Worker, JobStore], receiver_factory: Callable[..., Receiver]
) -> None:
    worker, store = worker_store
    receiver = receiver_factory(Reply(404, b"gone"))
    job_id = store.enqueue(JobSpec(type="http", payload={"url": receiver.url()})).job_id
    _drain(worker)
    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 1
    assert "http_status 404: gone" in (job.error or "")


def test_a_forbidden_target_fails_the_job_at_once_uncontacted(
    worker_store: tuple[Worker, JobStore], receiver_factory: Callable[..., Receiver]
) -> None:
    worker, store = worker_store
    forbidden = receiver_factory(host="127.0.0.2")
    job_id = store.enqueue(JobSpec(type="http", payload={"url": forbidden.url()})).job_id
    _drain(worker)
    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 1
    assert (job.error or "").startswith("target_forbidden: 127.0.0.2 is loopback")
    assert forbidden.seen == []
