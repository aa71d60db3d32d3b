"""Scale-out on Redis Cluster: the same drain spread over 3 queues, each in its own shard
(QUEUE_SHARDS), on clusters of 1, 2 and 3 masters (no replicas, so a node's CPU is its own
work). Per node: Redis CPU (INFO cpu, user + sys) and commands (INFO commandstats) per job,
read before and after the drain; and the drain's throughput.

    .venv/bin/python -m bench.cluster [--n 3000] [--masters 1,2,3] [--workers 1]

Each queue gets n jobs while paused; one workstream-worker per shard (WORKER_PROCESSES=
--workers each, the built-in `echo` handler) starts and registers; the clock and the Redis
figures start when the queues are resumed and stop when every job completed. On a small
machine the workers, not Redis, bound the throughput: the table says how much Redis CPU each
master spent per job, which is what the sharding divides.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from tests.support.cluster import RedisCluster
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore, open_store

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUEUES = {"emails": "a", "images": "b", "reports": "c"}
QUEUE_SHARDS = ",".join(f"{queue}:{shard}" for queue, shard in QUEUES.items())
SUBMIT_BATCH = 500


def node_figures(client: redis.Redis) -> dict[str, float]:
    cpu = client.info("cpu")
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for v in stats.values()) if isinstance(stats, dict) else 0
    return {
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "commands": float(calls),
    }


def start_workers(env: dict[str, str], workers: int) -> list[subprocess.Popen[bytes]]:
    """One workstream-worker per shard, each serving its shard's queue."""
    return [
        subprocess.Popen(
            [str(BIN / "workstream-worker")],
            env={
                **os.environ,
                **env,
                "QUEUES": queue,
                "WORKER_PROCESSES": str(workers),
                "LOG_LEVEL": "warning",
                "PYTHONPATH": str(REPO),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for queue in QUEUES
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def run(masters: int, n: int, workers: int, timeout_s: float) -> dict[str, Any]:
    cluster = RedisCluster.start(masters=masters, replicas=0)
    env = {"REDIS_URL": cluster.url, "QUEUE_SHARDS": QUEUE_SHARDS}
    settings = Settings.from_environ(env)
    client = connect(settings)
    store = open_store(client, settings)
    assert isinstance(store, ShardedStore)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for queue in QUEUES:
            for start in range(0, n, SUBMIT_BATCH):
                count = min(SUBMIT_BATCH, n - start)
                store.enqueue_many([JobSpec(type="echo", queue=queue, payload={})] * count)
            store.pause(queue)  # the workers start and register first: their start is not timed
        owners = {q: cluster.master_of(store.for_queue(q).keys.jobs).port for q in QUEUES}
        nodes = {node.port: node.client() for node in cluster.nodes}
        processes = start_workers(env, workers)
        deadline = time.monotonic() + timeout_s
        while store.live_worker_count() < len(QUEUES) * workers:
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not register")
            time.sleep(0.1)
        time.sleep(1.0)  # their fetchers are waiting now
        for node in nodes.values():
            node.config_resetstat()
        before = {port: node_figures(c) for port, c in nodes.items()}
        started = time.monotonic()
        for queue in QUEUES:
            store.resume(queue)
        total = n * len(QUEUES)
        done = 0
        while time.monotonic() - started < timeout_s:
            stats = store.stats()
            done = sum(stats.get(f"completed|{q}|echo", 0) for q in QUEUES)
            if done >= total:
                break
            time.sleep(0.2)  # the poll itself costs each master one HGETALL
        elapsed = time.monotonic() - started
        after = {port: node_figures(c) for port, c in nodes.items()}
    finally:
        stop(processes)
        client.close()
        cluster.stop()
    per_node = {
        port: {
            "queues": sorted(q for q, owner in owners.items() if owner == port),
            "cpu_us_per_job": (after[port]["cpu_s"] - before[port]["cpu_s"]) * 1e6 / total,
            "commands_per_job": (after[port]["commands"] - before[port]["commands"]) / total,
        }
        for port in sorted(after)
    }
    return {
        "masters": masters,
        "jobs": total,
        "completed": done,
        "status": "ok" if done >= total else "timeout",
        "drain_s": elapsed,
        "jobs_per_s": done / elapsed if elapsed else 0.0,
        "nodes": per_node,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| masters | jobs | drain s | jobs/s "
        "| per master: queues, Redis CPU us/job, commands/job |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        nodes = "; ".join(
            f"{','.join(v['queues']) or '-'}: {v['cpu_us_per_job']:.1f} us, "
            f"{v['commands_per_job']:.2f}"
            for v in r["nodes"].values()
        )
        total_cpu = sum(v["cpu_us_per_job"] for v in r["nodes"].values())
        lines.append(
            f"| {r['masters']} | {r['completed']}/{r['jobs']} | {r['drain_s']:.2f} | "
            f"{r['jobs_per_s']:.0f} | {nodes} (all: {total_cpu:.1f} us) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="jobs per queue (3 queues)")
    parser.add_argument("--masters", default="1,2,3", help="cluster sizes to measure")
    parser.add_argument("--workers", type=int, default=1, help="WORKER_PROCESSES per shard")
    parser.add_argument("--timeout", type=float, default=300.0, help="drain bound, seconds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = [run(int(m), args.n, args.workers, args.timeout) for m in args.masters.split(",")]
    print(table(results))
    print(f"cpus: {os.cpu_count()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
