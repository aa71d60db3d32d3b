"""`python -m bench.scaling`: WorkStream drain throughput as worker processes are added.

Meant for a machine with many cores (on 2 cores the curve only shows contention). Prints one
line per run and writes bench/results/scaling-<host>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.__main__ import RUNNER_MARGIN_S, machine_info, run_one
from bench.core import REPO_ROOT
from bench.redis_server import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procs", default="1,2,4,8")
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with RedisServer() as server:
        for procs in [int(p) for p in args.procs.split(",")]:
            rates, steady = [], []
            for run in range(1, args.runs + 1):
                opts = {"n": args.n, "procs": procs, "timeout": args.timeout}
                result = run_one(
                    "workstream", "drain", server.url, opts, args.timeout + RUNNER_MARGIN_S
                )
                print(f"[{procs} procs, run {run}] {report.one_line(result)}", flush=True)
                if isinstance(result.get("drain_jobs_per_s"), (int, float)):
                    rates.append(float(result["drain_jobs_per_s"]))
                if isinstance(result.get("steady_jobs_per_s"), (int, float)):
                    steady.append(float(result["steady_jobs_per_s"]))
            rows.append({"procs": procs, "runs": rates, "steady": steady})
        info = machine_info(server.binary, with_peers=False)
    lines = [
        f"WorkStream drain, {args.n:,} one-INCR jobs, {info.get('nproc')} CPUs "
        f"({info.get('cpu_model')}), "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "| worker processes | drain jobs/s, median (min-max) | steady jobs/s | per process |",
        "|---|---|---|---|",
    ]
    for row in rows:
        rates = row["runs"]
        if not rates:
            lines.append(f"| {row['procs']} | failed | |")
            continue
        median = statistics.median(rates)
        steady = statistics.median(row["steady"]) if row["steady"] else float("nan")
        lines.append(
            f"| {row['procs']} | {median:,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) "
            f"| {steady:,.0f} | {median / row['procs']:,.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = REPO_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"scaling-{os.uname().nodename}"
    Path(f"{stem}.md").write_text(text)
    Path(f"{stem}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
