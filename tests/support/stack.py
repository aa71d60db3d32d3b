"""Real WorkStream processes for end-to-end tests: workstream-api and workstream-worker started
from this virtualenv, each owned by the test and stopped by pid."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.redis_server import free_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Polls `predicate` until true or `timeout_s` passes (bounded in time and count)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, signum)

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


@dataclass
class Api(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> tuple[int, Any, dict[str, str]]:
        """One HTTP request; returns (status, decoded JSON or text, headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            data = None if body is None else json.dumps(body).encode()
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            decoded: Any = json.loads(text) if text else None
        except ValueError:
            decoded = text
        return response.status, decoded, reply_headers


@dataclass
class Stack:
    """Starts processes against one Redis; stop_all() stops every one it started."""

    redis_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> tuple[Any, Path]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}-{len(self.processes)}.log"
        full_env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            **self.env,
            **env,
        }
        with open(log_path, "ab") as log:  # the child keeps its own copy
            popen = subprocess.Popen(
                command, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO)
            )
        return popen, log_path

    def start_api(self, env: Mapping[str, str] | None = None, ready_timeout_s: float = 20) -> Api:
        port = free_port()
        popen, log_path = self._spawn(
            "api", [str(BIN / "workstream-api")], {"PORT": str(port), **(env or {})}
        )
        api = Api("api", popen, log_path, port)
        self.processes.append(api)

        def ready() -> bool:
            if not api.alive():
                raise RuntimeError(f"api exited: {api.log()[-2000:]}")
            try:
                return api.request("GET", "/health", timeout_s=1)[0] == 200
            except OSError:
                return False

        if not wait_until(ready, ready_timeout_s, 0.1):
            raise RuntimeError(f"api not ready: {api.log()[-2000:]}")
        return api

    def start_worker(self, env: Mapping[str, str] | None = None) -> Process:
        popen, log_path = self._spawn("worker", [str(BIN / "workstream-worker")], env or {})
        worker = Process("worker", popen, log_path)
        self.processes.append(worker)
        return worker

    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.name == "worker"]

    def stop_all(self, timeout_s: float = 30) -> dict[int, int | None]:
        """SIGTERM to everything still running, then SIGKILL what outlives timeout_s."""
        codes: dict[int, int | None] = {}
        for process in self.processes:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            codes[process.pid] = process.wait(max(0.1, deadline - time.monotonic()))
            if codes[process.pid] is None:
                process.signal(signal.SIGKILL)
                process.wait(5)
        return codes
