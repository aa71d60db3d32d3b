"""HTTP consumers for tests: the Node.js example worker (examples/node-worker) as a real
process, owned by the test's Stack and stopped by pid with the rest."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable

import pytest

from tests.support.stack import REPO, Api, Process, Stack

NODE_WORKER = REPO / "examples" / "node-worker" / "worker.js"


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    return path


def start_node_worker(stack: Stack, api: Api, **env: str) -> Process:
    """A Node worker leasing from `api`; env: QUEUES, COUNT, LEASE_S, WAIT_S, CONSUMER, ..."""
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = stack.log_dir / f"node-{len(stack.processes)}.log"
    full_env = {"PATH": os.environ.get("PATH", ""), "WORKSTREAM_URL": api.url, "WAIT_S": "1", **env}
    with open(log_path, "ab") as log:  # the child keeps its own copy
        popen = subprocess.Popen(
            [node(), str(NODE_WORKER)], env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    process = Process("node", popen, log_path)
    stack.processes.append(process)
    return process


def node_runs(processes: Iterable[Process]) -> Counter[str]:
    """How often Node workers started each job (job.started events in their logs)."""
    runs: Counter[str] = Counter()
    for process in processes:
        for event in process.log_events():
            if event.get("event") == "job.started":
                runs[str(event["job_id"])] += 1
    return runs
