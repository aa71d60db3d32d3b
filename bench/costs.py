"""`python -m bench.costs`: what WorkStream costs per job and when idle, on a private Redis.

- drain: N one-INCR jobs pre-enqueued, 2 worker processes started (one command,
  WORKER_PROCESSES=2); prints jobs/s, worker and Redis CPU per job (from /proc/<pid>/stat),
  Lua batch size and round trips per job (from INFO commandstats / stats).
- idle: one worker with nothing to do for 20 s; prints its CPU use.

Every process is started here and stopped by its pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench.core import client, spawn, stop_all
from bench.redis_server import RedisServer
from bench.workstream_runner import BENCH_SLOTS, WorkStreamSystem, venv_bin, workstream_env

COUNTER_KEY = "bench:count"
DRAIN_TIMEOUT_S = 120.0
IDLE_SAMPLE_S = 20.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def family_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children (a WORKER_PROCESSES supervisor)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_s(pid) + sum(cpu_s(int(child)) for child in children)


def drain(url: str, redis_pid: int, n: int, slots: int) -> dict[str, Any]:
    r = client(url)
    r.flushall()
    producer = WorkStreamSystem(url)
    try:
        for start in range(0, n, 1000):
            producer.enqueue_incr_bulk(COUNTER_KEY, min(1000, n - start))
    finally:
        producer.close()
    r.config_resetstat()
    # As the benchmark runs them: one command, two worker processes (WORKER_PROCESSES).
    env = workstream_env(url, slots) | {"WORKER_PROCESSES": "2"}
    workers = [spawn([venv_bin("workstream-worker")], env, log_name="costs-worker")]
    try:
        redis_before, started = cpu_s(redis_pid), time.monotonic()
        while int(r.get(COUNTER_KEY) or 0) < n and time.monotonic() - started < DRAIN_TIMEOUT_S:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        done = int(r.get(COUNTER_KEY) or 0)
        worker_cpu = family_cpu_s(workers[0].pid)
        redis_cpu = cpu_s(redis_pid) - redis_before
        commands = r.info("commandstats")
        reads = int(r.info("stats")["total_reads_processed"])
    finally:
        stop_all(workers)
    evalsha = commands.get("cmdstat_evalsha", {"calls": 0, "usec_per_call": 0.0})
    return {
        "jobs": done,
        "slots": slots,
        "jobs_per_s": round(done / elapsed),
        "worker_cpu_us_per_job": round(worker_cpu / n * 1e6, 1),
        "redis_cpu_us_per_job": round(redis_cpu / n * 1e6, 1),
        "jobs_per_lua_call": round(n / max(int(evalsha["calls"]), 1), 1),
        "lua_us_per_call": float(evalsha["usec_per_call"]),
        "round_trips_per_job": round(reads / n, 2),
    }


def idle(url: str) -> dict[str, Any]:
    worker = spawn([venv_bin("workstream-worker")], workstream_env(url), log_name="costs-idle")
    try:
        time.sleep(3)  # start-up is not idle time
        before, started = cpu_s(worker.pid), time.monotonic()
        time.sleep(IDLE_SAMPLE_S)
        share = (cpu_s(worker.pid) - before) / (time.monotonic() - started)
    finally:
        stop_all([worker])
    return {"idle_worker_cpu_percent": round(share * 100, 2), "sample_s": IDLE_SAMPLE_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["drain", "idle", "all"], nargs="?", default="all")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--slots", default=f"{BENCH_SLOTS},10")
    args = parser.parse_args()
    with RedisServer() as server:
        assert server.proc is not None
        if args.what in ("drain", "all"):
            for slots in (int(s) for s in args.slots.split(",")):
                print("drain", drain(server.url, server.proc.pid, args.n, slots), flush=True)
        if args.what in ("idle", "all"):
            print("idle", idle(server.url), flush=True)


if __name__ == "__main__":
    main()
