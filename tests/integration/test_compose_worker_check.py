"""`python -m workstream.worker.check`, the worker container's healthcheck: healthy while this
host's worker processes heartbeat, unhealthy once one is silent past WORKER_TTL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.common.store import JobStore
from workstream.worker.check import Registration, check, verdict

HOST = "container-1"


def _beat(store: JobStore, worker_id: str, pid: int, host: str = HOST) -> None:
    store.heartbeat(worker_id, host, pid, ["default"], 4, 0)


def test_a_heartbeating_worker_on_this_host_is_healthy(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url)
    _beat(JobStore(redis_client, settings), "w1", os.getpid())
    assert check(settings, HOST) == (True, f"1 worker(s) on {HOST} heartbeating")


def test_a_worker_silent_past_worker_ttl_is_unhealthy(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, WORKER_TTL="300ms")
    _beat(JobStore(redis_client, settings), "w1", os.getpid())
    time.sleep(0.4)
    healthy, reason = check(settings, HOST)
    assert not healthy and reason.startswith("worker w1 (pid ")


def test_no_registered_worker_on_this_host_is_unhealthy(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url)
    _beat(JobStore(redis_client, settings), "elsewhere", os.getpid(), host="container-2")
    assert check(settings, HOST) == (False, f"no running worker on {HOST} has registered")


def test_unreachable_redis_is_unhealthy() -> None:
    settings = make_settings("redis://127.0.0.1:1/0")
    healthy, reason = check(settings, HOST)
    assert not healthy and reason.startswith("cannot read the heartbeats")


def test_a_stale_entry_of_a_previous_process_with_the_same_pid_is_ignored() -> None:
    old = Registration("old", HOST, 7, started_at=1_000, last_heartbeat=2_000)
    new = Registration("new", HOST, 7, started_at=50_000, last_heartbeat=59_000)
    assert verdict([old, new], HOST, 60_000, 30_000, running=lambda pid: True)[0]


def test_entries_of_processes_that_no_longer_run_are_ignored() -> None:
    gone = Registration("gone", HOST, 8, started_at=1_000, last_heartbeat=2_000)
    live = Registration("live", HOST, 9, started_at=1_000, last_heartbeat=59_000)
    assert verdict([gone, live], HOST, 60_000, 30_000, running=lambda pid: pid == 9)[0]


def test_the_module_runs_as_a_command_with_its_exit_status(redis_server: RedisServer) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url}
    done = subprocess.run(
        [sys.executable, "-m", "workstream.worker.check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout.split(":")[0]) == (1, "unhealthy")
