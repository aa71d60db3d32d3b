"""`workstream dev` as a subprocess: its own Redis (REDIS_URL unset, data under the working
directory), one API and two workers; SIGINT stops it with 0 and leaves none of its children
behind; a dead worker or API is started again, a dead Redis stops the rest with exit 1."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.redis_server import free_port
from tests.support.stack import BIN, Api, wait_until

STARTED = re.compile(r"^started (redis|api|worker) pid=(\d+)")
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 40  # SHUTDOWN_GRACE (5 s) + 10 s for the stack, with room to spare


@dataclass
class Dev:
    popen: subprocess.Popen[bytes]
    api: Api
    lines: list[str]
    stderr_path: Path
    reader: threading.Thread
    _pending: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def children(self, role: str | None = None) -> list[int]:
        found = [STARTED.match(line) for line in self.lines]
        return [int(m.group(2)) for m in found if m and role in (None, m.group(1))]

    def wait_line(self, prefix: str, timeout_s: float) -> str | None:
        """Collects stdout until a line starts with `prefix` (bounded by time and EOF)."""
        found: list[str] = []

        def seen() -> bool:
            while not self._pending.empty():
                line = self._pending.get_nowait()
                if line is None:
                    raise AssertionError(f"dev exited early: {self.stderr_tail()}")
                self.lines.append(line)
                if line.startswith(prefix):
                    found.append(line)
            return bool(found)

        return found[0] if wait_until(seen, timeout_s, 0.05) else None

    def stderr_tail(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_dev(tmp_path: Path, **extra_env: str) -> Dev:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "API_TOKEN", "PORT")}
    env.update({"SHUTDOWN_GRACE": "5s", "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"})
    env.update(extra_env)
    stderr_path = tmp_path / "dev.stderr"
    with open(stderr_path, "wb") as stderr:  # a file, so chatty children never block on a pipe
        popen = subprocess.Popen(
            [str(BIN / "workstream"), "dev", "--workers", "2", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    pending: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            pending.put(line.decode("utf-8", errors="replace").rstrip("\n"))
        pending.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    api = Api("dev", popen, stderr_path, port)  # for its request(); the pid is dev's own
    return Dev(popen, api, [], stderr_path, reader, pending)


def stop_dev(dev: Dev) -> None:
    """Teardown safety net: SIGINT, then SIGKILL by pid whatever it started and left."""
    if dev.popen.poll() is None:
        dev.popen.send_signal(signal.SIGINT)
        try:
            dev.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            dev.popen.kill()
            dev.popen.wait(10)
    for pid in dev.children():
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    dev.reader.join(5)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    running = start_dev(tmp_path)
    try:
        ready = running.wait_line("ready url=", READY_TIMEOUT_S)
        assert ready, running.stderr_tail()
        yield running
    finally:
        stop_dev(running)


def test_dev_prints_the_api_url_and_health_answers(dev: Dev) -> None:
    assert any(line.startswith(f"  API:      {dev.api.url}") for line in dev.lines), dev.lines
    status, body, _ = dev.api.request("GET", "/health")
    assert (status, body) == (200, {"status": "ok", "redis": "ok"})


def test_dev_runs_a_submitted_echo_job_to_completion(dev: Dev) -> None:
    status, job, _ = dev.api.request("POST", "/jobs", {"type": "echo", "payload": {"n": 7}})
    assert status == 201, job
    _, done, _ = dev.api.request("GET", f"/jobs/{job['id']}?wait=20", timeout_s=30)
    assert (done["status"], done["result"]) == ("completed", {"n": 7})


def test_dev_starts_two_workers(dev: Dev) -> None:
    def two() -> bool:
        return len(dev.api.request("GET", "/workers")[1]["workers"]) == 2

    assert wait_until(two, 20)
    workers = dev.api.request("GET", "/workers")[1]["workers"]
    assert sorted(w["pid"] for w in workers) == sorted(dev.children("worker"))


def test_dev_keeps_redis_data_under_the_working_directory(dev: Dev, tmp_path: Path) -> None:
    assert (tmp_path / ".data" / "redis" / "redis.log").exists()
    redis_line = next(line for line in dev.lines if line.startswith("ready url="))
    assert ":6379/" not in redis_line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_dev_with_0_and_every_child_is_gone(dev: Dev, signum: int) -> None:
    pids = dev.children()
    assert len(pids) == 4  # redis, api, two workers
    dev.popen.send_signal(signum)
    assert dev.popen.wait(STOP_TIMEOUT_S) == 0, dev.stderr_tail()
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10)


def test_a_killed_worker_is_replaced_and_jobs_still_complete(dev: Dev) -> None:
    killed = dev.children("worker")[0]
    os.kill(killed, signal.SIGKILL)
    assert dev.wait_line("started worker pid=", 30), dev.stderr_tail()
    assert f"replaces pid={killed}" in dev.stderr_tail()
    status, job, _ = dev.api.request("POST", "/jobs", {"type": "echo", "payload": 1})
    assert status == 201, job
    _, done, _ = dev.api.request("GET", f"/jobs/{job['id']}?wait=20", timeout_s=30)
    assert done["status"] == "completed"
    assert dev.popen.poll() is None  # the stack stayed up


def test_a_killed_api_is_replaced_and_answers_again(dev: Dev) -> None:
    os.kill(dev.children("api")[0], signal.SIGKILL)
    assert dev.wait_line("started api pid=", 30), dev.stderr_tail()

    def healthy() -> bool:
        try:
            return dev.api.request("GET", "/health")[0] == 200
        except OSError:  # refused until the new API listens
            return False

    assert wait_until(healthy, 30)


def test_a_stack_that_replaced_a_worker_still_stops_cleanly(dev: Dev) -> None:
    os.kill(dev.children("worker")[0], signal.SIGKILL)
    assert dev.wait_line("started worker pid=", 30), dev.stderr_tail()
    pids = dev.children()
    dev.popen.send_signal(signal.SIGINT)
    assert dev.popen.wait(STOP_TIMEOUT_S) == 0, dev.stderr_tail()
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10)


def test_a_dead_redis_stops_the_stack_with_exit_1(dev: Dev) -> None:
    pids = dev.children()
    os.kill(dev.children("redis")[0], signal.SIGKILL)
    assert dev.popen.wait(STOP_TIMEOUT_S) == 1
    stderr = dev.stderr_path.read_text(errors="replace")
    assert re.search(r"error: redis pid=\d+ exited unexpectedly .*; stopping the stack", stderr)
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10)


def test_the_banner_shows_the_redis_url_to_export_and_the_cli_path(dev: Dev) -> None:
    ready = next(line for line in dev.lines if line.startswith("ready url="))
    redis_url = ready.split(" redis=", 1)[1]
    assert f'  export REDIS_URL={redis_url}   # for redis-cli -u "$REDIS_URL"' in dev.lines
    cli = next(line for line in dev.lines if line.startswith("  CLI:"))
    command = cli.split(None, 1)[1]
    assert command == "workstream" or command == str(BIN / "workstream"), cli


def test_dev_loads_handlers_from_a_module_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text(
        "from workstream import handler\n\n\n"
        '@handler("double")\n'
        "def double(payload, ctx):\n"
        "    return payload * 2\n"
    )
    running = start_dev(tmp_path, WORKER_HANDLERS="myapp.jobs")
    try:
        assert running.wait_line("ready url=", READY_TIMEOUT_S), running.stderr_tail()
        assert "  Handlers: myapp.jobs" in running.lines
        _, job, _ = running.api.request("POST", "/jobs", {"type": "double", "payload": 21})
        _, done, _ = running.api.request("GET", f"/jobs/{job['id']}?wait=20", timeout_s=30)
        assert (done["status"], done["result"]) == ("completed", 42), done
    finally:
        stop_dev(running)


def test_dev_refuses_a_port_in_use_with_exit_1(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "workstream"), "dev", "--port", str(port)],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "started" not in done.stdout  # refused before starting anything
