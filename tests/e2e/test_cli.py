"""The `workstream` CLI as a subprocess against a live stack: one workstream-api and one
workstream-worker on the session's private redis-server (flushed per test), loopback only."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
    header = ["QUEUE", "PENDING", "PROCESSING", "SCHEDULED", "FAILED", "PAUSED"]
    assert lines[0].split()[:6] == header
    assert ["unserved", "3", "0", "0", "0", "no"] in [line.split()[:6] for line in lines]


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
    assert paused.stdout.splitlines()[1].split()[5] == "yes"  # PAUSED
    ids = [live.submit("echo", {"n": n}) for n in range(5)]
    # Bounded look: a paused queue must not be drained while we watch it for a second.
    assert not wait_until(lambda: live.queue("default")["pending"] < 5, 1.0)

    resumed = live.cli("resume", "default")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[1].split()[5] == "no"
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


# -- exit codes scripts can rely on, per-job commands, the live view -------------------------


def submitted_id(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


def test_version_prints_the_installed_version() -> None:
    done = run_cli("--version", api_url="http://127.0.0.1:1")
    assert done.returncode == 0
    assert re.fullmatch(r"workstream \d+\.\d+\S*\n", done.stdout), done.stdout


def test_status_wait_exits_4_when_the_job_failed_and_shows_its_attempts(live: Live) -> None:
    job_id = live.submit("fail", {"permanent": True})
    done = live.cli("status", job_id, "--wait", "20")
    assert done.returncode == 4, done.stderr
    assert re.search(r"^status\s+failed$", done.stdout, re.MULTILINE), done.stdout
    if "history" in live.get(f"/jobs/{job_id}"):  # servers that record attempts
        assert "history (oldest first)" in done.stdout
        assert "traceback of attempt 1:" in done.stdout


def test_status_wait_exits_5_when_the_job_was_cancelled(live: Live) -> None:
    job_id = submitted_id(live.cli("--json", "submit", "echo", "--delay", "3600"))
    cancelled = live.cli("cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"cancelled job {job_id}\n"
    assert live.cli("status", job_id, "--wait", "5").returncode == 5


def test_status_wait_exits_6_when_the_job_is_still_unfinished(live: Live) -> None:
    job_id = live.submit("echo", {}, queue="unserved")
    done = live.cli("status", job_id, "--wait", "1")
    assert done.returncode == 6
    assert done.stderr == f"job {job_id} is still pending after waiting 1s\n"


def test_status_without_wait_exits_0_whatever_the_job_status(live: Live) -> None:
    job_id = live.submit("fail", {"permanent": True})
    live.wait_status(job_id)
    assert live.cli("status", job_id).returncode == 0


def test_submit_wait_exits_0_once_the_job_completed(live: Live) -> None:
    done = live.cli("submit", "echo", "--payload", '{"n": 7}', "--wait", "20")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^result\s+\{\"n\":7\}$", done.stdout, re.MULTILINE), done.stdout


def test_submit_options_reach_the_job(live: Live) -> None:
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    done = live.cli(
        "--json", "submit", "echo", "--queue", "unserved", "--timeout", "12.5",
        "--max-attempts", "7", "--idempotency-key", "order-42", "--run-at", tomorrow + "+01:00",
    )  # fmt: skip
    job = live.get(f"/jobs/{submitted_id(done)}")
    assert (job["queue"], job["timeout"], job["max_attempts"]) == ("unserved", 12.5, 7)
    assert (job["idempotency_key"], job["status"]) == ("order-42", "scheduled")
    run_at = datetime.fromisoformat(job["run_at"].replace("Z", "+00:00"))
    expected = datetime.fromisoformat(tomorrow + "+01:00")
    assert abs((run_at - expected).total_seconds()) < 1  # the zone was honoured


def test_submit_with_the_same_idempotency_key_returns_the_first_job(live: Live) -> None:
    args = ("--json", "submit", "echo", "--queue", "unserved", "--idempotency-key", "once")
    first, again = submitted_id(live.cli(*args)), submitted_id(live.cli(*args))
    assert first == again
    assert live.queue("unserved")["pending"] == 1


def test_submit_unique_refuses_a_duplicate_with_exit_1_naming_the_holder(live: Live) -> None:
    args = ("--json", "submit", "echo", "--queue", "unserved", "--unique", "nightly-report")
    first = submitted_id(live.cli(*args, "--unique-ttl", "10m"))
    again = live.cli(*args)
    assert again.returncode == 1
    assert again.stderr.startswith(f"error: duplicate_job: job {first} holds unique key ")
    assert live.queue("unserved")["pending"] == 1  # nothing written for the duplicate


def test_submit_unique_payload_keys_the_job_on_its_content(live: Live) -> None:
    args = ("--json", "submit", "echo", "--queue", "unserved", "--unique-payload")
    first_id = submitted_id(live.cli(*args, "--payload", '{"n": 1}'))
    first = live.get(f"/jobs/{first_id}")
    assert first["unique_key"].startswith("sha256:")
    assert live.cli(*args, "--payload", '{"n": 1}').returncode == 1
    assert live.cli(*args, "--payload", '{"n": 2}').returncode == 0  # another payload


def test_submit_expires_in_sets_the_jobs_expiry(live: Live) -> None:
    done = live.cli("--json", "submit", "echo", "--queue", "unserved", "--expires-in", "10m")
    job = live.get(f"/jobs/{submitted_id(done)}")
    expires = datetime.fromisoformat(job["expires_at"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    assert abs((expires - created).total_seconds() - 600) < 2


def test_submit_expires_at_in_the_past_exits_1_with_the_api_error(live: Live) -> None:
    done = live.cli("submit", "echo", "--expires-at", "2020-01-01T00:00:00Z")
    assert done.returncode == 1
    assert done.stderr.startswith("error: validation_error: expires_at: "), done.stderr


def test_retry_runs_a_failed_job_again(live: Live) -> None:
    (job_id,) = make_failed(live, 1)
    done = live.cli("retry", job_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"retried job {job_id}\n"
    assert live.get(f"/jobs/{job_id}")["attempts"] <= 1  # attempts start over


def test_cancel_of_a_finished_job_exits_1_with_invalid_transition(live: Live) -> None:
    job_id = live.submit("echo", {})
    live.wait_status(job_id)
    done = live.cli("cancel", job_id)
    assert done.returncode == 1
    assert done.stderr.startswith("error: invalid_transition: ")


def test_delete_without_yes_and_without_a_terminal_refuses_and_keeps_the_job(live: Live) -> None:
    job_id = live.submit("echo", {})
    live.wait_status(job_id)
    done = live.cli("delete", job_id)
    assert done.returncode == 2
    assert "stdin is not a terminal, add --yes to confirm" in done.stderr
    assert live.get(f"/jobs/{job_id}")["status"] == "completed"


def test_delete_with_yes_removes_the_job(live: Live) -> None:
    job_id = live.submit("echo", {})
    live.wait_status(job_id)
    done = live.cli("delete", job_id, "--yes")
    assert done.returncode == 0, done.stderr
    assert live.api.request("GET", f"/jobs/{job_id}")[0] == 404


def test_queue_delete_without_yes_and_without_a_terminal_refuses(live: Live) -> None:
    done = live.cli("queues", "delete", "default")
    assert done.returncode == 2
    assert "add --yes" in done.stderr


def test_health_exits_0_and_reports_redis(live: Live) -> None:
    done = live.cli("health")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^redis\s+ok$", done.stdout, re.MULTILINE), done.stdout


def test_times_carry_their_zone(live: Live) -> None:
    job_id = live.submit("echo", {})
    done = live.cli("status", job_id)
    created = next(line for line in done.stdout.splitlines() if line.startswith("created_at"))
    assert re.fullmatch(r"created_at\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", created), created


def test_workers_shows_the_handlers_when_the_api_reports_them(live: Live) -> None:
    done = live.cli("workers")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    if "handlers" in live.get("/workers")["workers"][0]:
        assert header.split()[-1] == "HANDLERS"
        assert "echo" in row.split()[-1].split(",")


def test_top_draws_bounded_frames_without_a_terminal(live: Live) -> None:
    live.submit("echo", {}, queue="unserved")
    done = live.cli("top", "--iterations", "2", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("jobs: ") == 2
    assert "\x1b" not in done.stdout
    assert str(live.worker.pid) in done.stdout
    assert re.search(r"^unserved\s+1\s", done.stdout, re.MULTILINE), done.stdout


def test_top_json_prints_one_object_per_frame(live: Live) -> None:
    done = live.cli("--json", "top", "--iterations", "2", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(frames) == 2
    assert all(frame["at"].endswith("UTC") and "queues" in frame for frame in frames)


def cli_env(api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("API_URL", "API_TOKEN")}
    env["API_URL"] = api_url
    return env


def test_top_ends_cleanly_with_exit_0_on_ctrl_c(live: Live) -> None:
    top = subprocess.Popen(
        [CLI, "top", "--iterations", "1000", "--interval", "0.2"],
        env=cli_env(live.api.url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert top.stdout is not None and top.stdout.readline()  # the first frame is out
        top.send_signal(signal.SIGINT)
        _, err = top.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if top.poll() is None:
            top.kill()
            top.wait(5)
    assert top.returncode == 0
    assert err == ""  # no traceback


def test_top_on_a_terminal_redraws_in_place(live: Live) -> None:
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [CLI, "top", "--iterations", "2", "--interval", "0.2"],
            env=cli_env(live.api.url),
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        screen = b""
        while chunk := _read_pty(primary):
            screen += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert done.returncode == 0, done.stderr
    assert screen.count(b"\x1b[H\x1b[2J") == 2


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the writer side is closed and drained
        return b""


def test_submit_priority_sets_the_jobs_priority(live: Live) -> None:
    done = live.cli("--json", "submit", "echo", "--queue", "unserved", "--priority", "8")
    assert live.get(f"/jobs/{submitted_id(done)}")["priority"] == 8
    assert live.queue("unserved")["pending"] == 1
