"""WORKER_HANDLERS as users write it: `WORKER_HANDLERS=myapp.jobs workstream-worker` run in the
directory that holds `myapp/`, with the real console script and nothing on PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer
from tests.support.stack import BIN, wait_until
from workstream.common.jobs import JobSpec
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


def _project(root: Path, source: str) -> Path:
    """A user's project: myapp/jobs.py holding `source`."""
    package = root / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(textwrap.dedent(source))
    return root


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "REDIS_URL": redis_url, "WORKER_TTL": "2s", "SHUTDOWN_GRACE": "1s", **extra}


def _run_to_exit(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "workstream-worker")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_handler_module_in_the_working_directory_is_imported_and_runs_jobs(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    project = _project(
        tmp_path,
        """
        from workstream import handler

        @handler("myapp_greet")
        def greet(payload, ctx):
            return {"hello": payload["name"]}
        """,
    )
    store = JobStore(redis_client, Settings.from_environ({"REDIS_URL": redis_server.url}))
    job_id = store.enqueue(JobSpec(type="myapp_greet", payload={"name": "ada"})).job_id
    worker = subprocess.Popen(
        [str(BIN / "workstream-worker")],
        cwd=project,
        env=_env(redis_server.url, WORKER_HANDLERS="myapp.jobs"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: store.get_status(job_id) is JobStatus.COMPLETED, 30), (
            worker.poll(),
            store.get_job(job_id),
        )
        job = store.get_job(job_id)
        assert job is not None and job.result == {"hello": "ada"}
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr[-2000:]


def test_a_module_that_does_not_exist_stops_the_worker_with_exit_2_and_one_line(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    done = _run_to_exit(tmp_path, _env(redis_server.url, WORKER_HANDLERS="myapp.jobs"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "workstream: WORKER_HANDLERS: cannot import 'myapp.jobs': "
        "ModuleNotFoundError: No module named 'myapp'"
    ]


def test_a_module_that_fails_while_importing_names_its_error_in_one_line(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    project = _project(tmp_path, "import json\nsettings = json.loads('{not json')\n")
    done = _run_to_exit(project, _env(redis_server.url, WORKER_HANDLERS="myapp.jobs"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("workstream: WORKER_HANDLERS: cannot import 'myapp.jobs': ")
    assert "JSONDecodeError: Expecting property name" in line
    assert "Traceback" not in done.stderr


def test_with_several_worker_processes_a_bad_module_stops_the_command_once_with_exit_2(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = _env(redis_server.url, WORKER_HANDLERS="myapp.jobs", WORKER_PROCESSES="2")
    done = _run_to_exit(tmp_path, env)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
