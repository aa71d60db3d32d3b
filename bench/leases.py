"""`python -m bench.leases`: jobs/s drained by HTTP consumers (the Node.js example worker, over
the lease protocol) with `count` batches, next to the Python worker's drain, on one private Redis.

Each run pre-enqueues N `echo` jobs (empty payload) and times them until all are completed:
- python: one workstream-worker command with WORKER_PROCESSES=2 (as bench.costs runs it);
- http-count-C: one workstream-api (API_PROCESSES=2) and 2 Node workers leasing C jobs a call
  and answering each job with its own POST /jobs/{id}/complete.

Every process is started here and stopped by its pid (bench.core); every wait is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.core import client, spawn, stop_all
from bench.redis_server import RedisServer, free_port
from bench.workstream_runner import BENCH_SLOTS, venv_bin
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

NODE_WORKER = Path(__file__).resolve().parents[1] / "examples" / "node-worker" / "worker.js"
DRAIN_TIMEOUT_S = 180.0
NAMESPACE = "bench-leases"


def _store(url: str) -> JobStore:
    settings = Settings.from_environ({"REDIS_URL": url, "NAMESPACE": NAMESPACE})
    return JobStore(connect(settings), settings)


def _enqueue(store: JobStore, n: int) -> None:
    spec = JobSpec(type="echo")
    for start in range(0, n, 1000):
        store.enqueue_many([spec] * min(1000, n - start))


def _drain(store: JobStore, n: int) -> tuple[int, float]:
    """Waits (bounded) until n jobs are completed; returns (completed, seconds)."""
    completed_key = store.keys.status(JobStatus.COMPLETED)
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < DRAIN_TIMEOUT_S:
        done = int(store.redis.zcard(completed_key))
        if done >= n:
            break
        time.sleep(0.01)
    return done, time.monotonic() - started


def _env(url: str) -> dict[str, str]:
    return {"REDIS_URL": url, "NAMESPACE": NAMESPACE, "LOG_LEVEL": "warning"}


def python_drain(url: str, n: int) -> dict[str, Any]:
    client(url).flushall()
    store = _store(url)
    _enqueue(store, n)
    env = _env(url) | {"WORKER_PROCESSES": "2", "WORKER_COUNT": str(BENCH_SLOTS)}
    procs = [spawn([venv_bin("workstream-worker")], env, log_name="leases-worker")]
    try:
        done, seconds = _drain(store, n)
    finally:
        stop_all(procs)
    return {
        "run": "python",
        "jobs": done,
        "seconds": round(seconds, 2),
        "jobs_per_s": round(done / seconds),
    }


def http_drain(url: str, n: int, count: int, consumers: int) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed")
    client(url).flushall()
    store = _store(url)
    _enqueue(store, n)
    port = free_port()
    api_env = _env(url) | {"PORT": str(port), "API_PROCESSES": "2"}
    procs = [spawn([venv_bin("workstream-api")], api_env, log_name="leases-api")]
    try:
        _wait_healthy(port)
        node_env = {
            "WORKSTREAM_URL": f"http://127.0.0.1:{port}",
            "COUNT": str(count),
            "LEASE_S": "60",
            "WAIT_S": "1",
        }
        started = time.monotonic()
        procs += [
            spawn([node, str(NODE_WORKER)], node_env, log_name="leases-node")
            for _ in range(consumers)
        ]
        done, _ = _drain(store, n)
        seconds = time.monotonic() - started  # includes the consumers' start (~50 ms)
    finally:
        stop_all(procs)
    return {
        "run": f"http-count-{count}",
        "consumers": consumers,
        "jobs": done,
        "seconds": round(seconds, 2),
        "jobs_per_s": round(done / seconds),
    }


def _wait_healthy(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("workstream-api not healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--counts", default="1,10,100")
    parser.add_argument("--consumers", type=int, default=2)
    args = parser.parse_args()
    results = []
    with RedisServer() as server:
        results.append(python_drain(server.url, args.n))
        print(json.dumps(results[-1]), flush=True)
        for count in (int(c) for c in args.counts.split(",")):
            results.append(http_drain(server.url, args.n, count, args.consumers))
            print(json.dumps(results[-1]), flush=True)
    print(f"\ncores: {os.cpu_count()}  jobs per run: {args.n}")
    print("| run | jobs/s |\n| --- | --- |")
    for result in results:
        print(f"| {result['run']} | {result['jobs_per_s']} |")


if __name__ == "__main__":
    main()
