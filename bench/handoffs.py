"""`python -m bench.handoffs`: what a dependency across shards costs beside one within a shard.

On a private redis-server (loopback, no persistence), with QUEUE_SHARDS=far:a, in this process
(no worker processes: each phase drives the scripts itself, so the figures are Redis and
round-trip work, not handler time). Each phase runs twice, from an empty database: `near` (the
children's queue in the parent's shard) and `far` (the children in shard a, the parent in the
default shard):

1. fan-out: one parent and --children children submitted in calls of 1,000; the submission's
   time (far: plus the mover's links); the parent's completion (near: the completing script
   releases every child; far: it owes one settle hand-off per child) and the time until every
   child is pending (far: the mover performing the settles, --limit entries a pass);
2. chain: --chain jobs, each the parent of the next, alternating shards when `far`; each link
   of the chain completed in turn as soon as it is pending, the mover run between steps as a
   worker's scheduler duty would (without its sleep). The figure is the time per edge.

Writes bench/results/handoffs.{md,json} (`--quick`: 2,000 children, a chain of 100,
handoffs-quick.*). Every wait is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.__main__ import machine_info
from bench.core import write_results
from bench.redis_server import RedisServer
from bench.workstream_runner import workstream_env
from workstream.common.jobs import JobSpec
from workstream.common.outbox import Outbox
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore
from workstream.common.states import JobStatus

NEAR, FAR = "near", "far"  # the children's queue: in the parent's shard, in shard a
QUEUES = {NEAR: "default", FAR: "far"}


def _timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _drain_outbox(outbox: Outbox, limit: int, timeout_s: float) -> int:
    """Mover passes until nothing is owed; passes made."""
    passes, deadline = 0, time.monotonic() + timeout_s
    while outbox.owed():
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not drain")
        outbox.move(limit)
        passes += 1
    return passes


def _complete(store: ShardedStore, queue: str, job_id: str) -> None:
    shard = store.for_queue(queue)
    (job,) = shard.claim("bench", 1, [queue])
    assert job.id == job_id, (job.id, job_id)
    shard.complete("bench", job, "{}")


def fan_out(
    store: ShardedStore, outbox: Outbox, where: str, children: int, args: argparse.Namespace
) -> dict[str, Any]:
    store.redis.flushall()
    parent = store.enqueue(JobSpec(type="t")).job_id
    queue = QUEUES[where]
    child = JobSpec.from_mapping({"type": "t", "queue": queue, "depends_on": [parent]})
    start = time.perf_counter()
    for offset in range(0, children, 1000):
        store.enqueue_many([child] * min(1000, children - offset))
    submit_s = time.perf_counter() - start
    link_s = _timed(lambda: _drain_outbox(outbox, args.limit, args.timeout))
    complete_s = _timed(lambda: _complete(store, "default", parent))
    start = time.perf_counter()
    passes = _drain_outbox(outbox, args.limit, args.timeout)
    settle_s = time.perf_counter() - start
    pending = store.for_queue(queue).queue_info(queue).pending
    assert pending == children, (where, pending)
    return {
        "submit_s": submit_s,
        "link_s": link_s,
        "complete_s": complete_s,
        "settle_s": settle_s,
        "settle_passes": passes,
        "released_after_s": complete_s + settle_s,
        "released_per_s": children / (complete_s + settle_s),
    }


def chain(
    store: ShardedStore, outbox: Outbox, where: str, length: int, args: argparse.Namespace
) -> dict[str, Any]:
    store.redis.flushall()
    queues = [QUEUES[NEAR] if where == NEAR or i % 2 == 0 else QUEUES[FAR] for i in range(length)]
    ids: list[str] = []
    for queue in queues:
        spec = {"type": "t", "queue": queue, **({"depends_on": [ids[-1]]} if ids else {})}
        ids.append(store.enqueue(JobSpec.from_mapping(spec)).job_id)
    deadline = time.monotonic() + args.timeout
    start = time.perf_counter()
    for queue, job_id in zip(queues, ids, strict=True):
        while store.get_status(job_id) is not JobStatus.PENDING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"chain stuck at {job_id}")
            outbox.move(args.limit)
        _complete(store, queue, job_id)
    elapsed = time.perf_counter() - start
    return {"elapsed_s": elapsed, "per_edge_ms": elapsed / (length - 1) * 1000}


def report(result: dict[str, Any]) -> str:
    near, far = result[NEAR], result[FAR]
    n, length = result["children"], result["chain"]
    fn, ff, cn, cf = near["fan_out"], far["fan_out"], near["chain"], far["chain"]
    return "\n".join(
        [
            "# Dependencies within a shard and across shards",
            "",
            f"`{result['command']}` on {result['machine']['nproc']} CPU(s), "
            f"{result['machine']['cpu_model']}; private redis-server, no persistence; in one "
            f"process, the mover run in a loop ({result['limit']} entries a pass).",
            "",
            f"| {n:,} children of one parent | within its shard | in another shard |",
            "| --- | ---: | ---: |",
            f"| submitting them (1,000 a call) | {fn['submit_s']:.2f} s | {ff['submit_s']:.2f} s "
            f"+ {ff['link_s']:.2f} s of links |",
            f"| the parent's completion (its script) | {fn['complete_s'] * 1000:.1f} ms | "
            f"{ff['complete_s'] * 1000:.1f} ms (owes {n:,} settles) |",
            f"| every child pending after the parent completed | "
            f"{fn['released_after_s'] * 1000:.1f} ms | {ff['released_after_s']:.2f} s "
            f"({ff['released_per_s']:,.0f} settles/s, {ff['settle_passes']} mover passes) |",
            "",
            f"| a chain of {length} jobs, each released and completed in turn | within a "
            "shard | alternating two shards |",
            "| --- | ---: | ---: |",
            f"| per edge | {cn['per_edge_ms']:.2f} ms | {cf['per_edge_ms']:.2f} ms |",
            "",
            "Across shards each edge costs two hand-offs (a link at submission, a settle when "
            "the parent ends), each one script in the target shard and one in the source "
            "shard. In a deployment the mover runs in every worker's scheduler duty, at most "
            "1 s apart when idle and without pause while a full batch is due.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handoffs", description=__doc__)
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--chain", type=int, default=500)
    parser.add_argument("--limit", type=int, default=100, help="entries a mover pass reads")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on each wait (s)")
    parser.add_argument("--quick", action="store_true", help="2,000 children, a chain of 100")
    args = parser.parse_args(argv)
    children, length = (2_000, 100) if args.quick else (args.children, args.chain)
    server = RedisServer().start()
    try:
        env = workstream_env(server.url) | {
            "QUEUE_SHARDS": "far:a",
            "JOB_QUEUE_CAPACITY": str(max(children, 100_000)),
        }
        settings = Settings.from_environ(env)
        client = connect(settings, dedicated=True)
        store = ShardedStore(client, settings)
        outbox = Outbox(client, settings)
        result: dict[str, Any] = {
            "children": children,
            "chain": length,
            "limit": args.limit,
            "command": "python -m bench.handoffs" + (" --quick" if args.quick else ""),
            "machine": machine_info(server.binary, with_peers=False),
        }
        for where in (NEAR, FAR):
            result[where] = {
                "fan_out": fan_out(store, outbox, where, children, args),
                "chain": chain(store, outbox, where, length, args),
            }
        client.close()
    finally:
        server.stop()
    write_results("handoffs-quick" if args.quick else "handoffs", result, report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
