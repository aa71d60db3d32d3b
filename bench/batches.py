"""`python -m bench.batches`: a 100,000-job batch built in several calls, drained, and its
callback (issue 21).

On a private redis-server (loopback, no persistence), two phases, each from an empty database:

1. plain: N jobs enqueued in calls of --chunk (JobStore.enqueue_many, one Lua call each), the
   Redis memory they take, and their drain by --processes worker processes (the default
   WORKER_COUNT each);
2. batch: an open batch with an on_complete callback, the same N jobs added in calls of --chunk
   (BatchStore.add, one Lua call each: the jobs, their membership and the counts), sealed; the
   build time, the memory per job, the drain (until the batch settles: the last member's
   completion creates the callback) and the time until the callback job itself has run.

The difference of the two memory figures is what batch membership costs per job (the member
list entry, the job's `batch`, `finish` and `batch_outcome` fields). Writes
bench/results/batches.{md,json} (`--quick`: 10,000 jobs, batches-quick.*). Every process is
started here and stopped by its pid; every wait is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import redis

from bench.__main__ import machine_info
from bench.core import REPO_ROOT, write_results
from bench.redis_server import RedisServer
from bench.workstream_runner import NAMESPACE, WORKERS_KEY, venv_bin, workstream_env
from workstream.common.batches import BatchStore, callback_spec
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore

POLL_S = 0.05
CALLBACK_KEY = "bench:batch_callback_ran"


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def wait_until(what: str, done: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until done() holds, polled every POLL_S; raises after timeout_s."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:g}s")
        time.sleep(POLL_S)
    return time.monotonic() - start


class Workers:
    """`workstream-worker` with WORKER_PROCESSES=n, stopped by its pid (SIGTERM, then KILL)."""

    def __init__(self, redis_url: str, processes: int) -> None:
        env = {**os.environ, **workstream_env(redis_url), "WORKER_PROCESSES": str(processes)}
        self.proc = subprocess.Popen(
            [venv_bin("workstream-worker")],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def specs(count: int) -> list[JobSpec]:
    return [JobSpec(type="bench_incr", payload={"key": "bench:n"}) for _ in range(count)]


def drain(
    client: redis.Redis, redis_url: str, processes: int, done: Callable[[], bool], timeout: float
) -> tuple[Workers, float]:
    workers = Workers(redis_url, processes)
    wait_until("workers up", lambda: int(client.zcard(WORKERS_KEY)) >= processes, timeout)
    return workers, wait_until("drain", done, timeout)


def plain_phase(
    client: redis.Redis, store: JobStore, url: str, n: int, chunk: int, args: argparse.Namespace
) -> dict[str, Any]:
    client.flushall()
    before = used_memory(client)
    start = time.monotonic()
    for offset in range(0, n, chunk):
        store.enqueue_many(specs(min(chunk, n - offset)))
    build_s = time.monotonic() - start
    memory = used_memory(client) - before
    queue = store.keys.queue("default")
    workers, drain_s = drain(
        client, url, args.processes, lambda: int(client.get("bench:n") or 0) >= n, args.timeout
    )
    workers.stop()
    assert client.llen(queue) == 0
    return {
        "build_s": build_s,
        "memory_bytes": memory,
        "memory_per_job": memory / n,
        "drain_s": drain_s,
        "drain_jobs_per_s": n / drain_s,
    }


def batch_phase(
    client: redis.Redis, store: JobStore, url: str, n: int, chunk: int, args: argparse.Namespace
) -> dict[str, Any]:
    client.flushall()
    batches = BatchStore(store)
    on_complete = callback_spec(
        "on_complete", {"type": "bench_incr", "payload": {"key": CALLBACK_KEY}}
    )
    before = used_memory(client)
    start = time.monotonic()
    batch_id, _ = batches.create([], sealed=False, on_complete=on_complete)
    calls = 0
    for offset in range(0, n, chunk):
        batches.add(batch_id, specs(min(chunk, n - offset)))
        calls += 1
    batches.seal(batch_id)
    build_s = time.monotonic() - start
    memory = used_memory(client) - before
    settled = [0.0]

    def is_settled() -> bool:
        return client.hget(store.keys.batch(batch_id), "state") == "settled"

    workers, drain_s = drain(client, url, args.processes, is_settled, args.timeout)
    settled[0] = time.monotonic()
    callback_s = wait_until(
        "callback", lambda: int(client.get(CALLBACK_KEY) or 0) >= 1, args.timeout
    )
    workers.stop()
    batch = batches.require(batch_id)
    assert batch.total == n and batch.completed == n, batch
    assert batch.on_complete is not None and batch.on_complete.created
    callback = store.get_job(batch.on_complete.job_id)
    assert callback is not None and callback.payload["batch"]["total"] == n
    assert int(client.get(CALLBACK_KEY) or 0) == 1  # exactly once
    assert int(client.get("bench:n") or 0) == n
    return {
        "calls": calls,
        "build_s": build_s,
        "build_jobs_per_s": n / build_s,
        "memory_bytes": memory,
        "memory_per_job": memory / n,
        "drain_s": drain_s,
        "drain_jobs_per_s": n / drain_s,
        "callback_after_settle_s": callback_s,
        "callback_state": callback.status.value,
    }


def report(result: dict[str, Any]) -> str:
    plain, batch = result["plain"], result["batch"]
    n = result["jobs"]
    overhead = batch["memory_per_job"] - plain["memory_per_job"]
    return "\n".join(
        [
            f"# A {n:,}-job batch ({result['chunk']:,} jobs a call), drained, with its callback",
            "",
            f"`{result['command']}` on {result['machine']['nproc']} CPU(s), "
            f"{result['machine']['cpu_model']}; {result['processes']} worker processes "
            "(default WORKER_COUNT), private redis-server, no persistence.",
            "",
            "| | plain jobs | batch members |",
            "| --- | ---: | ---: |",
            f"| build ({batch['calls']} calls) | {plain['build_s']:.2f} s | "
            f"{batch['build_s']:.2f} s ({batch['build_jobs_per_s']:,.0f} jobs/s) |",
            f"| Redis memory per job | {plain['memory_per_job']:.0f} B | "
            f"{batch['memory_per_job']:.0f} B (+{overhead:.0f} B) |",
            f"| drain | {plain['drain_s']:.2f} s ({plain['drain_jobs_per_s']:,.0f} jobs/s) | "
            f"{batch['drain_s']:.2f} s ({batch['drain_jobs_per_s']:,.0f} jobs/s), until settled |",
            f"| callback job run, after settling | | {batch['callback_after_settle_s']:.2f} s |",
            "",
            "The callback job is created by the script that completes the last member; its "
            "payload carries the batch summary (total, completed, failed, cancelled).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batches", description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000, help="jobs a call (at most 1,000)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on each wait (s)")
    parser.add_argument("--quick", action="store_true", help="10,000 jobs, *-quick results")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.jobs
    server = RedisServer().start()
    try:
        env = workstream_env(server.url) | {"JOB_QUEUE_CAPACITY": str(max(n, 100_000))}
        settings = Settings.from_environ(env)
        client = connect(settings, dedicated=True)
        store = JobStore(client, settings)
        result: dict[str, Any] = {
            "jobs": n,
            "chunk": args.chunk,
            "processes": args.processes,
            "command": "python -m bench.batches" + (" --quick" if args.quick else ""),
            "machine": machine_info(server.binary, with_peers=False),
            "namespace": NAMESPACE,
        }
        result["plain"] = plain_phase(client, store, server.url, n, args.chunk, args)
        result["batch"] = batch_phase(client, store, server.url, n, args.chunk, args)
        client.close()
    finally:
        server.stop()
    write_results("batches-quick" if args.quick else "batches", result, report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
