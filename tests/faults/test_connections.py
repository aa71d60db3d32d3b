"""Issue 15, finding 3: thousands of idle connections must not end the API.

With select() a descriptor numbered 1024 or more raised ValueError out of waitress's loop and
the process exited for good (about 1,100 idle connections did it). These tests open 2,000 idle
loopback connections to a real workstream-api and then ask it for /health and POST /jobs on new
connections; and they run one under an open-files limit far below its connections, which must
make new connections wait, not end or spin the server.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import Stopwatch
from tests.faults.results import record
from tests.support.redis_server import free_port
from tests.support.stack import Api, wait_until

IDLE_CONNECTIONS = 2_000
# Descriptors this test process needs besides its idle connections (pytest, logs, Redis).
OWN_FDS = 200
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def open_files_for_idle_connections() -> Iterator[None]:
    """Raises this process's soft open-files limit for the idle connections, within the hard
    limit; skips when the hard limit is too low. Restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + OWN_FDS
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"open-files hard limit {hard} is below the {needed} this test needs")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int) -> list[socket.socket]:
    """`count` connections that send nothing (the kernel completes them, waitress accepts)."""
    idle: list[socket.socket] = []
    try:
        for _ in range(count):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    except BaseException:
        close_all(idle)
        raise
    return idle


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def ask_health(port: int, timeout_s: float = 30) -> bytes:
    """GET /health on a new connection; the reply's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return read_status_line(sock)


def read_status_line(sock: socket.socket) -> bytes:
    """Reads one whole reply (framed by Content-Length, which waitress always sends) and
    returns its status line, so the connection is ready for the next request."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data.split(b"\r\n", 1)[0]
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head.split(b"\r\n", 1)[0]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
def test_health_and_submissions_answer_while_2000_idle_connections_are_open(
    processes: int,
    open_files_for_idle_connections: None,
    make_redis: RedisFactory,
    make_stack: StackFactory,
) -> None:
    server = make_redis()
    stack = make_stack(server.url, LOG_LEVEL="warning", API_PROCESSES=str(processes))
    api = stack.start_api()
    clock = Stopwatch()
    idle = open_idle(api.port, IDLE_CONNECTIONS)
    try:
        # Queued behind every idle connection: answered only once all were accepted.
        health = ask_health(api.port)
        status, body, _ = api.request("POST", "/jobs", {"type": "echo"}, timeout_s=30)
        # The first idle connection still works too.
        first = get_health_on(idle[0])
        alive = api.alive()
    finally:
        close_all(idle)
    record(
        f"{IDLE_CONNECTIONS:,} idle connections, API_PROCESSES={processes}",
        "fast",
        jobs=1,
        faults=f"{IDLE_CONNECTIONS:,} idle loopback connections",
        lost=0 if status == 201 else 1,
        duplicates=None,
        wall_s=clock.elapsed,
        passed=health == first == b"HTTP/1.1 200 OK" and status == 201 and alive,
        notes=f"/health {health.decode()!r}, POST /jobs {status}, process alive: {alive}",
    )
    assert health == b"HTTP/1.1 200 OK"
    assert status == 201, body
    assert first == b"HTTP/1.1 200 OK"
    assert alive
    assert wait_until(lambda: api.request("GET", "/health")[0] == 200, 10)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def limit_open_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def get_health_on(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    return read_status_line(sock)


def healthy(api: Api, timeout_s: float = 2) -> bool:
    try:
        return api.request("GET", "/health", timeout_s=timeout_s)[0] == 200
    except OSError:
        return False


@pytest.mark.timeout(120)
def test_connections_beyond_the_open_files_limit_wait_without_ending_or_spinning_the_api(
    make_redis: RedisFactory, tmp_path: Path
) -> None:
    limit = 256  # soft and hard, so the API cannot raise it
    server = make_redis()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "PORT": str(port),
        "API_THREADS": "8",
        "LOG_LEVEL": "warning",
        "PYTHONPATH": str(REPO),
    }
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workstream.api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: limit_open_files(limit),
        )
    api = Api("api", process, log_path, port)
    idle: list[socket.socket] = []
    try:
        assert wait_until(lambda: healthy(api), 20), api.log()
        idle = open_idle(port, limit + 100)  # more than its descriptors could hold
        assert get_health_on(idle[0]) == b"HTTP/1.1 200 OK"
        assert not healthy(api, timeout_s=1)  # a new connection waits in the listen backlog
        started = cpu_seconds(process.pid)
        time.sleep(1.0)  # a window to measure: a loop spinning on accept() burns all of it
        assert cpu_seconds(process.pid) - started < 0.5, "the API spins at its open-files limit"
        assert get_health_on(idle[0]) == b"HTTP/1.1 200 OK"  # existing connections still served
        close_all(idle[1:])
        assert wait_until(lambda: healthy(api), 20), api.log()[-2000:]
        status, body, _ = api.request("POST", "/jobs", {"type": "echo"})
        assert status == 201, body
        assert api.alive()
    finally:
        close_all(idle)
        process.terminate()
        process.wait(timeout=15)
