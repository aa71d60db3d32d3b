"""`python -m bench.priority_cost --before DIR --after DIR`: what job priorities cost a drain
whose jobs set none.

Each DIR is a copy of the code (a `git worktree`, or a copy of a working tree with one change
taken out); each drain (bench.workstream_runner `workstream drain`: N jobs enqueued, then 2
worker processes at the default WORKER_COUNT drain them) runs with its own DIR's code. The two
are interleaved: every round runs both, one right after the other, in an order that alternates
each round, against one private redis-server (each run FLUSHALLs it), so each per-round ratio
compares runs taken seconds apart on a shared, noisy host. Prints each round, then the medians,
the ratio of the medians and the median per-round ratio (after / before) as one JSON line.

Every process is started here and waited for; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.redis_server import RedisServer

RUN_TIMEOUT_S = 300.0


def drain(tree: Path, redis_url: str, n: int) -> float | None:
    """Jobs/s of one drain with `tree`'s code (PYTHONPATH puts it ahead of the editable
    install; the runner hands it on to the workers it starts); None when the run failed."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-m", "bench.workstream_runner", "workstream", "drain"]
    command += ["--n", str(n), "--redis-url", redis_url, "--timeout", str(RUN_TIMEOUT_S - 30)]
    done = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        print(f"{tree}: {(done.stderr or done.stdout)[-300:]}", file=sys.stderr)
        return None
    rate = json.loads(lines[-1]).get("drain_jobs_per_s")
    return float(rate) if rate else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    runs: dict[str, list[float | None]] = {"before": [], "after": []}
    server = RedisServer().start()
    try:
        for round_no in range(args.rounds):
            order = ["before", "after"] if round_no % 2 == 0 else ["after", "before"]
            for name in order:
                runs[name].append(drain(trees[name], server.url, args.n))
            print(f"round {round_no + 1}: before {runs['before'][-1]} after {runs['after'][-1]}")
    finally:
        server.stop()
    pairs = [(b, a) for b, a in zip(runs["before"], runs["after"], strict=True) if b and a]
    summary: dict[str, Any] = {"n": args.n, "rounds": args.rounds, "paired": len(pairs)}
    if pairs:
        before = statistics.median(b for b, _ in pairs)
        after = statistics.median(a for _, a in pairs)
        summary.update(
            before_median=round(before),
            after_median=round(after),
            ratio_of_medians=round(after / before, 3),
            median_round_ratio=round(statistics.median(a / b for b, a in pairs), 3),
            rounds_within_5pct=sum(1 for b, a in pairs if a >= 0.95 * b),
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
