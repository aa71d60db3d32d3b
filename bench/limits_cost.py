"""`python -m bench.limits_cost`: what rate and concurrency limits cost a queue that sets none.

Issue 20 promises that drain throughput with no limits set stays within 5 % of before limits
existed. This measures the drain (bench.workstream_runner `workstream drain`: N jobs enqueued,
then 2 worker processes at the default WORKER_COUNT drain them) at two revisions, each run with
its own code from a git worktree of its own:

- before: the commit before limits were introduced (the parent of the first commit that added
  common/limits.py, found with git log), or --before REV;
- after: the current checkout, or --after REV (a clean worktree of, say, HEAD, so nobody's
  uncommitted edits are measured).

The two are interleaved: every round runs both, one right after the other, in an order that
alternates each round, against the same private redis-server (each run FLUSHALLs it). On a
shared, noisy host a figure taken minutes apart compares two different machines; a per-round
ratio compares runs taken seconds apart. The report gives both medians, the ratio of the
medians, the median of the per-round ratios and in how many rounds `after` was within 5 %.
Writes bench/results/limits-cost.{md,json} (`--quick`: limits-cost-quick.*).

Worktrees it creates are removed at the end; every process is started here and waited for, every
wait is bounded (the runner's own --timeout bounds a drain).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.__main__ import machine_info
from bench.core import REPO_ROOT, write_results
from bench.redis_server import RedisServer

RUN_TIMEOUT_S = 300.0  # one runner process: enqueue, start-up, drain (bounded by --timeout too)
GIT_TIMEOUT_S = 120.0
BOUND = 0.05  # the promise: within 5 % of before


def git(*args: str, cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    )
    return done.stdout.strip()


def before_limits() -> str:
    """The parent of the first commit that added common/limits.py."""
    added = git("log", "--diff-filter=A", "--format=%H", "--", "common/limits.py").splitlines()
    if not added:
        raise SystemExit("common/limits.py has no commit adding it; give --before REV")
    return git("rev-parse", f"{added[-1]}^")


@contextmanager
def worktree(rev: str | None, parent: Path) -> Iterator[tuple[Path, str]]:
    """A detached worktree of `rev`, removed afterwards; None is the current checkout."""
    if rev is None:
        yield REPO_ROOT, "checkout (" + git("rev-parse", "--short", "HEAD") + " + working tree)"
        return
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = parent / sha[:12]
    git("worktree", "add", "--detach", str(path), sha)
    try:
        yield path, sha[:12]
    finally:
        git("worktree", "remove", "--force", str(path))


def drain(tree: Path, redis_url: str, n: int, timeout_s: float) -> dict[str, Any]:
    """One drain, run with `tree`'s own code (its bench harness and its workstream package:
    PYTHONPATH puts the tree ahead of the editable install, and the runner hands it on to the
    workers it starts)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-m", "bench.workstream_runner", "workstream", "drain"]
    command += ["--n", str(n), "--redis-url", redis_url, "--timeout", str(timeout_s)]
    done = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"status": "error", "error": (done.stderr or done.stdout)[-500:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def check_imports(tree: Path) -> str:
    """Where `workstream` is imported from with the tree on PYTHONPATH (it must be the tree)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = "import workstream.common.store as s; print(s.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, timeout=60
    )
    where = done.stdout.strip()
    if not where.startswith(str(tree)):
        raise SystemExit(f"{tree}: workstream imports from {where or done.stderr!r}")
    return where


def measure(
    trees: dict[str, Path], redis_url: str, n: int, rounds: int, timeout_s: float
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    names = list(trees)
    for round_no in range(rounds):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            runs[name].append(drain(trees[name], redis_url, n, timeout_s))
        print(
            f"[round {round_no + 1}/{rounds}] "
            + "  ".join(f"{name} {_rate_text(runs[name][-1])}" for name in names),
            flush=True,
        )
    return runs


def _rate_text(run: dict[str, Any]) -> str:
    rate = run.get("drain_jobs_per_s")
    return f"{rate:,.0f} jobs/s" if rate else f"{run.get('status')}: {run.get('error', '')}"


def summarise(runs: dict[str, list[dict[str, Any]]], figure: str) -> dict[str, Any]:
    """Medians of `figure` per side and the per-round after/before ratios (rounds where either
    run failed are left out and counted)."""
    pairs = [
        (b[figure], a[figure])
        for b, a in zip(runs["before"], runs["after"], strict=True)
        if b.get(figure) and a.get(figure)
    ]
    if not pairs:
        return {"figure": figure, "rounds": 0, "failed_rounds": len(runs["before"])}
    before = [b for b, _ in pairs]
    after = [a for _, a in pairs]
    ratios = [a / b for b, a in pairs]
    return {
        "figure": figure,
        "rounds": len(pairs),
        "failed_rounds": len(runs["before"]) - len(pairs),
        "before": {"median": statistics.median(before), "min": min(before), "max": max(before)},
        "after": {"median": statistics.median(after), "min": min(after), "max": max(after)},
        "ratio_of_medians": statistics.median(after) / statistics.median(before),
        "median_round_ratio": statistics.median(ratios),
        "round_ratios": ratios,
        "rounds_within_bound": sum(ratio >= 1 - BOUND for ratio in ratios),
        "within_bound": statistics.median(ratios) >= 1 - BOUND,
    }


def markdown(
    summaries: list[dict[str, Any]], labels: dict[str, str], n: int, info: dict[str, Any]
) -> str:
    lines = [
        f"Cost of limits, none set: drain of {n:,} no-op jobs by 2 worker processes (default "
        f"WORKER_COUNT), before = {labels['before']}, after = {labels['after']}, interleaved "
        f"rounds (order alternated); {info.get('nproc')} CPUs ({info.get('cpu_model')}), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| figure | before, median (min-max) | after, median (min-max) | after/before: "
        "ratio of medians | median per-round ratio (min-max) | rounds within 5 % |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        if not s["rounds"]:
            lines.append(f"| {s['figure']} | no round measured both | | | | |")
            continue
        b, a, ratios = s["before"], s["after"], s["round_ratios"]
        lines.append(
            f"| {s['figure']} | {b['median']:,.0f} ({b['min']:,.0f}-{b['max']:,.0f}) "
            f"| {a['median']:,.0f} ({a['min']:,.0f}-{a['max']:,.0f}) "
            f"| {s['ratio_of_medians']:.3f} | {s['median_round_ratio']:.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f}) "
            f"| {s['rounds_within_bound']}/{s['rounds']} |"
        )
    head = summaries[0]
    if head["rounds"]:
        verdict = "within" if head["within_bound"] else "NOT within"
        lines += [
            "",
            f"Drain with no limits set: {head['median_round_ratio']:.3f}x before on the median "
            f"round ({verdict} the 5 % bound)"
            + (f"; {head['failed_rounds']} round(s) failed" if head["failed_rounds"] else ""),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="revision before limits (default: found with git log)")
    parser.add_argument("--after", help="revision to compare (default: the current checkout)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3,000 jobs")
    parser.add_argument("--n", type=int, help="jobs per drain (20,000; quick: 3,000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (10; quick: 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on one drain, s")
    parser.add_argument("--worktrees", type=Path, help="where worktrees go (default: a temp dir)")
    parser.add_argument(
        "--name", help="results file stem (default limits-cost; quick: limits-cost-quick)"
    )
    args = parser.parse_args()
    n = args.n or (3000 if args.quick else 20000)
    rounds = args.rounds or (3 if args.quick else 10)
    before_rev = args.before or before_limits()
    parent = args.worktrees or Path(tempfile.mkdtemp(prefix="ws-limits-cost-"))
    parent.mkdir(parents=True, exist_ok=True)
    with (
        worktree(before_rev, parent) as (before_tree, before_label),
        worktree(args.after, parent) as (after_tree, after_label),
    ):
        trees = {"before": before_tree, "after": after_tree}
        for tree in trees.values():
            check_imports(tree)
        labels = {"before": before_label, "after": after_label}
        print(f"before {before_label} at {before_tree}; after {after_label} at {after_tree}")
        with RedisServer() as server:
            runs = measure(trees, server.url, n, rounds, args.timeout)
            info = machine_info(server.binary, with_peers=False)
    summaries = [summarise(runs, "drain_jobs_per_s"), summarise(runs, "steady_jobs_per_s")]
    stem = args.name or ("limits-cost-quick" if args.quick else "limits-cost")
    record = {"machine": info, "n": n, "rounds": rounds, "labels": labels, "runs": runs}
    record["summaries"] = summaries
    write_results(stem, record, markdown(summaries, labels, n, info))


if __name__ == "__main__":
    main()
