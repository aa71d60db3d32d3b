"""API_PROCESSES: several waitress processes share one port under a supervising parent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support.stack import Api, Stack, wait_until

ENV = {"API_PROCESSES": "2", "LOG_LEVEL": "info"}


def children(api: Api) -> set[int]:
    path = Path(f"/proc/{api.pid}/task/{api.pid}/children")
    return {int(pid) for pid in path.read_text().split()} if path.exists() else set()


def submit(api: Api, count: int) -> None:
    for n in range(count):  # a new connection each time, so the kernel spreads them
        status, body, _ = api.request("POST", "/jobs", {"type": "echo", "payload": {"n": n}})
        assert status == 201, body


def serving_pids(api: Api) -> set[int]:
    return {e["pid"] for e in api.log_events() if e.get("event") == "http.request"}


def test_every_api_process_accepts_requests_on_the_shared_port(stack: Stack) -> None:
    api = stack.start_api(ENV)
    assert wait_until(lambda: len(children(api)) == 2, 10)
    submit(api, 200)  # SO_REUSEPORT: the kernel spreads new connections over the children
    assert wait_until(lambda: children(api) <= serving_pids(api), 5)


def test_a_killed_api_process_is_replaced_and_requests_keep_succeeding(stack: Stack) -> None:
    api = stack.start_api(ENV)
    assert wait_until(lambda: len(children(api)) == 2, 10)
    victim, survivor = sorted(children(api))
    os.kill(victim, signal.SIGKILL)  # a child of the API this test started
    # Once it is reaped its socket is closed: the kernel routes new connections elsewhere.
    assert wait_until(lambda: victim not in children(api), 10)
    submit(api, 50)
    assert wait_until(lambda: len(children(api)) == 2, 10)
    assert survivor in children(api)
    assert any(e.get("event") == "api.child_died" for e in api.log_events())


def test_sigterm_stops_every_api_process_with_exit_code_zero(stack: Stack) -> None:
    api = stack.start_api(ENV)
    assert wait_until(lambda: len(children(api)) == 2, 10)
    pids = children(api)
    api.signal(signal.SIGTERM)
    assert api.wait(15) == 0
    assert not any(Path(f"/proc/{pid}/status").exists() for pid in pids)
