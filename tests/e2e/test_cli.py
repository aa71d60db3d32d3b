"""The `workstream` CLI as a subprocess against a live stack: one workstream-api and one
workstream-worker on the session's private redis-server (flushed per test), loopback only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import BIN, Api, Process, Stack, wait_until

CLI = str(BIN / "workstream")
NAMESPACE = f"cli-{uuid.uuid4().hex[:8]}"
JOB_ID = re.compile(r"^id\s+([0-9a-f]{32})$", re.MULTILINE)
CLI_TIMEOUT_S = 60


def run_cli(*args: str, api_url: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("API_URL", "API_TOKEN")}
    env["API_URL"] = api_url
    if token is not None:
        env["API_TOKEN"] = token
    return subprocess.run(
        [CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@dataclass
class Live:
    stack: Stack
    api: Api
    worker: Process

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, api_url=self.api.url)

    def get(self, path: str) -> Any:
        status, body, _ = self.api.request("GET", path)
        assert status == 200, body
        return body

    def submit(self, job_type: str, payload: Any, queue: str = "default") -> str:
        body = {"type": job_type, "payload": payload, "queue": queue}
        status, job, _ = self.api.request("POST", "/jobs", body)
        assert status == 201, job
        return str(job["id"])

    def queue(self, name: str) -> dict[str, Any]:
        queue: dict[str, Any] = self.get(f"/queues/{name}")
        return queue

    def wait_status(self, job_id: str, timeout_s: float = 20) -> dict[str, Any]:
        job: dict[str, Any] = self.get(f"/jobs/{job_id}?wait={timeout_s:g}")
        return job


@pytest.fixture
def live(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Live]:
    env = {"NAMESPACE": NAMESPACE, "SHUTDOWN_GRACE": "2s", "RETRY_BACKOFF": "0s"}
    stack = Stack(redis_server.url, tmp_path / "logs", env=env)
    try:
        worker = stack.start_worker()  # registers while the API starts
        api = stack.start_api()
        registered = wait_until(lambda: bool(api.request("GET", "/workers")[1]["workers"]), 20)
        assert registered, worker.log()[-2000:]
        yield Live(stack, api, worker)
    finally:
        stack.stop_all()


def test_submit_prints_the_job_id_and_the_job_completes(live: Live) -> None:
    done = live.cli("submit", "echo", "--payload", '{"hello": "cli"}')
    assert done.returncode == 0, done.stderr
    match = JOB_ID.search(done.stdout)
    assert match, done.stdout
    job = live.wait_status(match.group(1))
    assert job["status"] == "completed"
    assert job["result"] == {"hello": "cli"}


def test_submit_count_sends_a_batch_and_every_job_completes(live: Live) -> None:
    done = live.cli("submit", "echo", "--payload", "{}", "--count", "50")
    assert done.returncode == 0, done.stderr
    assert "submitted 50 echo jobs" in done.stdout
    completed = wait_until(
        lambda: len(live.get("/jobs?status=completed&limit=100")["jobs"]) == 50, 30
    )
    assert completed, live.get("/queues")


def test_submit_count_above_1000_is_split_into_batches(live: Live) -> None:
    # "bulk" is not in the worker's QUEUES: nothing takes its jobs, only the submission is tested
    done = live.cli("--json", "submit", "echo", "--queue", "bulk", "--count", "2500")
    assert done.returncode == 0, done.stderr
    ids = {job["id"] for job in json.loads(done.stdout)["jobs"]}
    assert len(ids) == 2500
    assert live.queue("bulk")["pending"] == 2500


def test_status_wait_shows_the_completed_job_with_its_result(live: Live) -> None:
    job_id = live.submit("sleep", {"seconds": 0.3})
    done = live.cli("status", job_id, "--wait", "20")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^status\s+completed$", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r'^result\s+\{"slept":0\.3\}$', done.stdout, re.MULTILINE), done.stdout


def test_queues_table_shows_counts(live: Live) -> None:
    for _ in range(3):
        live.submit("echo", {}, queue="unserved")  # the worker serves only `default`
    done = live.cli("queues")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["QUEUE", "PENDING", "PROCESSING", "SCHEDULED", "FAILED", "PAUSED"]
    assert ["unserved", "3", "0", "0", "0", "no"] in [line.split() for line in lines]


def test_workers_lists_the_running_worker(live: Live) -> None:
    done = live.cli("workers")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [row[2] for row in rows] == [str(live.worker.pid)]


def make_failed(live: Live, count: int) -> list[str]:
    ids = [live.submit("fail", {"permanent": True}) for _ in range(count)]
    assert wait_until(lambda: live.queue("default")["failed"] == count, 20), live.queue("default")
    return ids


def test_failed_list_shows_the_failed_jobs(live: Live) -> None:
    ids = make_failed(live, 3)
    done = live.cli("failed", "list", "--queue", "default")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:]}
    assert listed == set(ids)
    assert "failed permanently on request" in done.stdout


def test_failed_retry_requeues_the_failed_jobs(live: Live) -> None:
    ids = make_failed(live, 3)
    first_finish = {i: live.get(f"/jobs/{i}")["finished_at"] for i in ids}
    done = live.cli("failed", "retry", "--queue", "default")
    assert done.returncode == 0, done.stderr
    assert "retried 3 failed jobs of queue default" in done.stdout
    # They run again (and, failing permanently, fail again): each finishes a second time.
    rerun = wait_until(
        lambda: all(
            (job := live.get(f"/jobs/{i}"))["status"] == "failed"
            and job["finished_at"] != first_finish[i]
            for i in ids
        ),
        20,
    )
    assert rerun, [live.get(f"/jobs/{i}") for i in ids]


def test_failed_purge_with_yes_deletes_the_failed_jobs(live: Live) -> None:
    make_failed(live, 3)
    done = live.cli("failed", "purge", "--queue", "default", "--yes")
    assert done.returncode == 0, done.stderr
    assert "purged 3 failed jobs of queue default" in done.stdout
    assert live.queue("default")["failed"] == 0


def test_paused_queue_keeps_its_jobs_pending_until_resumed(live: Live) -> None:
    paused = live.cli("pause", "default")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.splitlines()[1].split()[-1] == "yes"
    ids = [live.submit("echo", {"n": n}) for n in range(5)]
    # Bounded look: a paused queue must not be drained while we watch it for a second.
    assert not wait_until(lambda: live.queue("default")["pending"] < 5, 1.0)

    resumed = live.cli("resume", "default")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[1].split()[-1] == "no"
    assert all(live.wait_status(job_id)["status"] == "completed" for job_id in ids)


def test_json_output_parses_before_or_after_the_command(live: Live) -> None:
    live.submit("echo", {})
    before = live.cli("--json", "queues")
    after = live.cli("jobs", "--json", "--limit", "5")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert [q["name"] for q in json.loads(before.stdout)["queues"]] == ["default"]
    assert len(json.loads(after.stdout)["jobs"]) == 1


def test_unreachable_api_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_cli("queues", api_url=url)
    assert done.returncode == 3
    assert done.stderr.startswith(f"error: cannot reach API at {url}: ")
    assert done.stderr.count("\n") == 1


def test_api_error_exits_1_with_its_code(live: Live) -> None:
    done = live.cli("status", uuid.uuid4().hex)
    assert done.returncode == 1
    assert done.stderr.startswith("error: job_not_found: ")
    assert done.stdout == ""


def test_invalid_payload_exits_2_without_calling_the_api() -> None:
    done = run_cli("submit", "echo", "--payload", "{nope", api_url="http://127.0.0.1:1")
    assert done.returncode == 2
    assert "not valid JSON" in done.stderr


@pytest.fixture
def secured_api(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Api]:
    stack = Stack(redis_server.url, tmp_path / "logs", env={"NAMESPACE": NAMESPACE})
    try:
        yield stack.start_api({"API_TOKEN": "secret"})
    finally:
        stack.stop_all()


def test_secured_api_refuses_the_cli_without_a_token(secured_api: Api) -> None:
    done = run_cli("queues", api_url=secured_api.url)
    assert done.returncode == 1
    assert done.stderr.startswith("error: unauthorized: ")


def test_secured_api_accepts_the_cli_with_a_token(secured_api: Api) -> None:
    by_flag = run_cli("queues", "--token", "secret", api_url=secured_api.url)
    by_env = run_cli("queues", api_url=secured_api.url, token="secret")
    assert (by_flag.returncode, by_env.returncode) == (0, 0), by_flag.stderr + by_env.stderr
