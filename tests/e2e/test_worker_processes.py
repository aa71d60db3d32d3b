"""WORKER_PROCESSES: several worker processes, each its own worker, under one supervising parent."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tests.support.stack import Api, Process, Stack, wait_until

FAST_RECOVERY = {"WORKER_TTL": "1s", "SWEEPER_INTERVAL": "300ms"}
ENV = {"WORKER_PROCESSES": "2", "WORKER_COUNT": "1", **FAST_RECOVERY}


def children(process: Process) -> set[int]:
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return {int(pid) for pid in path.read_text().split()} if path.exists() else set()


def live_workers(api: Api) -> dict[str, int]:
    """Worker id -> pid, as registered in Redis."""
    return {w["id"]: w["pid"] for w in api.request("GET", "/workers")[1]["workers"]}


def start_workers(stack: Stack, api: Api, **env: str) -> Process:
    """The parent, once each of its children has registered as a worker."""
    parent = stack.start_worker({**ENV, **env})
    assert wait_until(lambda: len(children(parent)) == 2, 10), parent.log()[-2000:]
    assert wait_until(lambda: set(live_workers(api).values()) == children(parent), 10)
    return parent


def submit(api: Api, count: int, job_type: str, payload: Any) -> list[str]:
    ids = []
    for _ in range(count):
        status, job, _ = api.request("POST", "/jobs", {"type": job_type, "payload": payload})
        assert status == 201, job
        ids.append(job["id"])
    return ids


def jobs(api: Api, ids: list[str]) -> list[dict[str, Any]]:
    return [api.request("GET", f"/jobs/{job_id}")[1] for job_id in ids]


def all_in(api: Api, ids: list[str], status: str) -> bool:
    return all(job["status"] == status for job in jobs(api, ids))


def events(process: Process, name: str) -> list[dict[str, Any]]:
    """Log events named `name` (the log file is appended to across test runs: filter further)."""
    return [e for e in process.log_events() if e.get("event") == name]


def test_each_worker_process_registers_its_own_worker_id_and_runs_jobs(stack: Stack) -> None:
    api = stack.start_api()
    parent = start_workers(stack, api)
    workers = live_workers(api)
    assert len(workers) == 2  # two ids, one per child pid (the id is built in the child)
    ids = submit(api, 12, "sleep", {"seconds": 0.1})
    assert wait_until(lambda: all_in(api, ids, "completed"), 10)
    assert {job["worker"] for job in jobs(api, ids)} == set(workers)
    assert parent.alive()


def test_the_parent_holds_no_redis_connection_and_no_thread(stack: Stack) -> None:
    api = stack.start_api()
    parent = start_workers(stack, api)
    assert os.listdir(f"/proc/{parent.pid}/task") == [str(parent.pid)]
    fds = Path(f"/proc/{parent.pid}/fd")
    assert not [fd for fd in fds.iterdir() if os.readlink(fd).startswith("socket:")]


def test_children_stop_when_the_parent_is_killed_instead_of_living_on(stack: Stack) -> None:
    api = stack.start_api()
    parent = start_workers(stack, api)
    orphans = children(parent)
    os.kill(parent.pid, signal.SIGKILL)  # the parent this test started
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans), 15)


def test_a_sigkilled_worker_process_is_replaced_and_every_job_still_completes(
    stack: Stack,
) -> None:
    api = stack.start_api()
    parent = start_workers(stack, api, WORKER_COUNT="2")
    workers = live_workers(api)
    ids = submit(api, 4, "count_runs", {"sleep": 2})
    assert wait_until(lambda: all_in(api, ids, "processing"), 10)
    victim = workers[jobs(api, ids)[0]["worker"]]
    assert victim in children(parent)
    os.kill(victim, signal.SIGKILL)  # a child of the worker this test started
    assert wait_until(lambda: len(children(parent) - {victim}) == 2, 10)
    assert wait_until(lambda: all_in(api, ids, "completed"), 15), jobs(api, ids)
    assert victim in [e["pid"] for e in events(parent, "worker.child_died")]
    assert wait_until(lambda: set(live_workers(api).values()) == children(parent), 5)


def test_sigterm_to_the_parent_drains_every_child_and_exits_zero(stack: Stack) -> None:
    api = stack.start_api()
    parent = start_workers(stack, api, SHUTDOWN_GRACE="5s")
    pids, workers = children(parent), live_workers(api)
    ids = submit(api, 2, "sleep", {"seconds": 1})
    assert wait_until(lambda: all_in(api, ids, "processing"), 10)
    parent.signal(signal.SIGTERM)
    assert parent.wait(15) == 0
    assert all_in(api, ids, "completed")  # finished within the grace, not requeued
    assert not any(Path(f"/proc/{pid}/status").exists() for pid in pids)
    assert set(workers) <= {e["worker_id"] for e in events(parent, "worker.stopped")}
    assert live_workers(api) == {}


def test_ctrl_c_drains_every_child_instead_of_killing_it(stack: Stack) -> None:
    api = stack.start_api()
    parent = start_workers(stack, api, SHUTDOWN_GRACE="5s")
    workers = live_workers(api)
    ids = submit(api, 2, "sleep", {"seconds": 1})
    assert wait_until(lambda: all_in(api, ids, "processing"), 10)
    # A terminal's Ctrl-C signals the whole process group: every child, then the parent too.
    for pid in children(parent):
        os.kill(pid, signal.SIGINT)
    parent.signal(signal.SIGINT)
    assert parent.wait(15) == 0
    assert all_in(api, ids, "completed")
    assert not [e for e in events(parent, "worker.exit_now") if e.get("worker_id") in workers]
