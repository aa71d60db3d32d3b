"""`python -m bench.paired`: single-enqueue throughput, WorkStream against each peer in pairs.

`make bench` measures each system's enqueue in turn, minutes apart; on a host whose speed
drifts (a shared VM) that compares two different machines. Here one long-lived producer per
system (bench.producer) enqueues a burst of N jobs one at a time, every system in turn, and the
round is repeated R times with the order rotated. Each round gives a WorkStream/peer ratio from
bursts taken seconds apart; the report is the median ratio and in how many rounds WorkStream
was ahead. Writes bench/results/paired-enqueue.{json,md} (`--quick`: paired-enqueue-quick.*).

Every process is started here and stopped by its pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time
from typing import Any

import redis

from bench.__main__ import PEERS, PEERS_PYTHON, ensure_peers_venv, machine_info
from bench.core import REPO_ROOT, write_results
from bench.redis_server import RedisServer

READY_TIMEOUT_S = 60.0
BURST_TIMEOUT_S = 120.0


class Producer:
    """One bench.producer process, driven line by line over its stdin and stdout."""

    def __init__(self, system: str, redis_url: str) -> None:
        python = sys.executable if system == "workstream" else str(PEERS_PYTHON)
        self.system = system
        self.proc = subprocess.Popen(
            [python, "-m", "bench.producer", system, redis_url],
            cwd=REPO_ROOT,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._line(READY_TIMEOUT_S) != "ready":
            raise RuntimeError(f"{system} producer did not start")

    def _line(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not readable:
            raise TimeoutError(f"{self.system} producer: no answer in {timeout_s:g}s")
        return self.proc.stdout.readline().strip()

    def burst(self, count: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        return float(self._line(BURST_TIMEOUT_S))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def measure(redis_url: str, systems: list[str], count: int, rounds: int) -> dict[str, list[float]]:
    """Rates per system, one per round; the order rotates every round."""
    r = redis.Redis.from_url(redis_url)
    producers = []
    try:
        for system in systems:
            producers.append(Producer(system, redis_url))
        rates: dict[str, list[float]] = {system: [] for system in systems}
        for round_no in range(rounds):
            shift = round_no % len(producers)
            for producer in producers[shift:] + producers[:shift]:
                r.flushall()
                rates[producer.system].append(producer.burst(count))
            print(
                f"[round {round_no + 1}/{rounds}] "
                + "  ".join(f"{name} {values[-1]:,.0f}" for name, values in rates.items()),
                flush=True,
            )
        return rates
    finally:
        for producer in producers:
            producer.stop()
        r.close()


def summarise(rates: dict[str, list[float]]) -> dict[str, Any]:
    ours = rates["workstream"]
    systems = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for name, v in rates.items()
    }
    ratios = {}
    for name, values in rates.items():
        if name == "workstream":
            continue
        per_round = [mine / theirs for mine, theirs in zip(ours, values, strict=True)]
        ratios[name] = {
            "median": statistics.median(per_round),
            "min": min(per_round),
            "max": max(per_round),
            "ahead": sum(ratio > 1 for ratio in per_round),
            "rounds": len(per_round),
        }
    return {"systems": systems, "ratios": ratios}


def markdown(summary: dict[str, Any], count: int, info: dict[str, Any]) -> str:
    lines = [
        f"Single enqueue, paired: bursts of {count:,} jobs one at a time, every system in turn, "
        f"order rotated each round; {info.get('nproc')} CPUs ({info.get('cpu_model')}), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| system | jobs/s, median (min-max) | WorkStream/system per round, median (min-max) "
        "| rounds WorkStream ahead |",
        "|---|---|---|---|",
    ]
    for name, figures in summary["systems"].items():
        ratio = summary["ratios"].get(name)
        rate = f"{figures['median']:,.0f} ({figures['min']:,.0f}-{figures['max']:,.0f})"
        if ratio is None:
            lines.append(f"| {name} | {rate} | | |")
            continue
        lines.append(
            f"| {name} | {rate} | {ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f}) "
            f"| {ratio['ahead']}/{ratio['rounds']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--n", type=int, default=3000, help="jobs per burst")
    parser.add_argument("--rounds", type=int, help="rounds (8; quick: 3)")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 8)
    ensure_peers_venv()
    systems = ["workstream", *[p for p in args.peers.split(",") if p]]
    with RedisServer() as server:
        rates = measure(server.url, systems, args.n, args.rounds)
        info = machine_info(server.binary, with_peers=True)
    summary = summarise(rates)
    stem = "paired-enqueue-quick" if args.quick else "paired-enqueue"
    record = {"machine": info, "n": args.n, "rounds": args.rounds, **summary}
    write_results(stem, record, markdown(summary, args.n, info))


if __name__ == "__main__":
    main()
