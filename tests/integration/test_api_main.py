"""workstream-api as a process: it serves, and SIGTERM / SIGINT stop it with exit code 0."""

from __future__ import annotations

import http.client
import json
import os
import resource
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


def test_sigterm_answers_a_running_long_poll_at_once_and_exits_0(redis_server: RedisServer) -> None:
    from tests.integration.api_fixtures import submit
    from workstream.common.settings import Settings
    from workstream.common.store import JobStore

    settings = Settings.from_environ({"REDIS_URL": redis_server.url})
    job_id = submit(JobStore(redis_server.client(), settings), payload={"n": 7})
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "PORT": str(port), "API_THREADS": "8"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workstream.api"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy(port, process)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/jobs/{job_id}?wait=60")
        time.sleep(0.3)  # the long-poll is waiting in a request thread
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        response = conn.getresponse()  # answered with the job as it is, not dropped
        body = json.loads(response.read())
        assert response.status == 200 and body["id"] == job_id and body["status"] == "pending"
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_api_process_logs_its_open_files_and_connection_limits(redis_server: RedisServer) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "PORT": str(port), "LOG_LEVEL": "info"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workstream.api"], cwd=ROOT, env=env, stderr=subprocess.PIPE
    )
    try:
        wait_healthy(port, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log = process.stderr.read().decode() if process.stderr else ""
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    (limits,) = [event for event in events if event["event"] == "api.open_files"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # the child inherits this one
    assert limits["hard"] == hard
    if hard != resource.RLIM_INFINITY:
        assert limits["soft"] == hard  # raised from whatever it started with
    assert 0 < limits["connection_limit"] <= limits["soft"]
