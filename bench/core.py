"""What every benchmarked system shares: process groups, counters, Redis statistics and the three
measurements (drain, bulk enqueue, paced latency).

Only the standard library and `redis` are imported here, so this module runs both in WorkStream's
virtualenv and in bench/.venv-peers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = REPO_ROOT / "bench" / "results" / "logs"

# The handler's whole Redis work in the latency test, in one round trip: read the server's
# clock, count the job, record submission-to-completion in microseconds.
LATENCY_LUA = """
local t = redis.call('TIME')
redis.call('INCR', KEYS[1])
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('RPUSH', KEYS[2], now_us - tonumber(ARGV[1]))
return 1
"""

COUNTER_KEY = "bench:counter"
LATENCY_KEY = "bench:latency_us"
WARMUP_KEY = "bench:warmup"
POLL_INTERVAL_S = 0.010
WARMUP_JOBS = 20
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0
# Commands the harness itself sends while it measures; never charged to a system.
HARNESS_COMMANDS = frozenset({"info", "config|resetstat", "config", "flushall", "ping"})

# Every process group this process started; killed on exit whatever happens.
_STARTED: list[subprocess.Popen[bytes]] = []
_PIDFILE: Path | None = None


# -- processes ----------------------------------------------------------------------------------


def spawn(
    cmd: Sequence[str], env: dict[str, str] | None = None, log_name: str = "proc"
) -> subprocess.Popen[bytes]:
    """Starts `cmd` in a new session (its own process group) with output to a log file."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}-{os.getpid()}-{len(_STARTED)}.log"
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(cmd),
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _STARTED.append(proc)
    _record_pids()
    return proc


def _record_pids() -> None:
    """Keeps the pidfile equal to the groups still running, so that the parent, should this
    runner die, kills only live groups of ours (never a recycled pid)."""
    if _PIDFILE is not None:
        _PIDFILE.write_text("".join(f"{proc.pid}\n" for proc in _STARTED), encoding="ascii")


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group we created, a bounded wait, then SIGKILL to the group."""
    pgid = proc.pid  # start_new_session made the child its group's leader
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(pgid, signal.SIGKILL)  # stragglers: forked children that outlived the leader
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc in _STARTED:
        _STARTED.remove(proc)
        _record_pids()


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        stop_group(proc, grace_s=0)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_pidfile(path: Path) -> None:
    """Kills the process groups a runner recorded (used by the parent after a runner ends)."""
    if not path.exists():
        return
    for line in path.read_text(encoding="ascii").split():
        if line.isdigit():
            _signal_group(int(line), signal.SIGKILL)


def _cleanup_on_signal(signum: int, frame: object) -> None:
    stop_all(list(_STARTED))
    raise SystemExit(128 + signum)


# -- Redis helpers ------------------------------------------------------------------------------


def write_results(stem: str, record: Any, text: str) -> None:
    """A bench's figures: bench/results/<stem>.md (the report, also printed) and <stem>.json
    (everything measured)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    out = REPO_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)


def server_time_us(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1_000_000 + int(micros)


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Command calls (by name, inner script commands included), read events and memory."""
    info = r.info("commandstats")
    calls = {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in info.items()
        if name.startswith("cmdstat_")
    }
    stats = r.info("stats")
    memory = r.info("memory")
    return {
        "calls": calls,
        "reads": int(stats.get("total_reads_processed", 0)),
        "used_memory": int(memory["used_memory"]),
    }


def reset_stats(r: redis.Redis) -> None:
    r.config_resetstat()


def cost(
    before: dict[str, Any], after: dict[str, Any], jobs: int, polls: int = 0
) -> dict[str, Any]:
    """Commands and round trips per job between two snapshots, less the harness's own traffic
    (INFO/CONFIG by name, and `polls` counter GETs, each one command in one round trip)."""
    per_command: dict[str, int] = {}
    for name, calls in after["calls"].items():
        delta = calls - before["calls"].get(name, 0)
        if delta > 0 and name not in HARNESS_COMMANDS:
            per_command[name] = delta
    if polls:
        per_command["get"] = max(0, per_command.get("get", 0) - polls)
        if not per_command["get"]:
            del per_command["get"]
    total = sum(per_command.values())
    # Three INFO calls per snapshot and the harness's polls each cost one read event.
    reads = max(0, after["reads"] - before["reads"] - polls - 3)
    return {
        "commands_per_job": total / jobs,
        "round_trips_per_job": reads / jobs,
        "by_command": dict(sorted(per_command.items(), key=lambda kv: -kv[1])),
    }


def wait_counter(r: redis.Redis, key: str, target: int, timeout_s: float) -> dict[str, Any]:
    """Polls `key` every 10 ms until it reaches `target` or `timeout_s` passes."""
    start = time.monotonic()
    first_at: float | None = None
    polls = 0
    value = 0
    max_polls = int(timeout_s / POLL_INTERVAL_S) + 10
    while polls < max_polls:
        raw = r.get(key)
        polls += 1
        value = int(raw or 0)
        now = time.monotonic()
        if value > 0 and first_at is None:
            first_at = now - start
        if value >= target:
            return {"ok": True, "elapsed_s": now - start, "first_s": first_at, "polls": polls}
        if now - start > timeout_s:
            break
        time.sleep(POLL_INTERVAL_S)
    return {
        "ok": False,
        "elapsed_s": time.monotonic() - start,
        "first_s": first_at,
        "polls": polls,
        "reached": value,
    }


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return float(sorted_values[rank - 1])


# -- the systems --------------------------------------------------------------------------------


class System:
    """One job queue under test. Subclasses enqueue the two task kinds and start workers."""

    name = "system"
    bulk_api: str | None = None  # how bulk enqueue is done, or None when it is not offered

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    # Producer side.
    def enqueue_incr(self, key: str) -> None:
        raise NotImplementedError

    def enqueue_incr_many(self, key: str, n: int) -> None:
        """n jobs, one call each (overridden where a native loop is cheaper, e.g. asyncio)."""
        for _ in range(n):
            self.enqueue_incr(key)

    def enqueue_incr_bulk(self, key: str, n: int) -> None:
        raise NotImplementedError

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        raise NotImplementedError

    # Worker side.
    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        raise NotImplementedError

    def workers_ready(self, r: redis.Redis, procs: int) -> bool | None:
        """True once `procs` workers are up; None when the system cannot tell (warm-up jobs
        decide instead)."""
        return None

    def latency_extra(self, r: redis.Redis) -> dict[str, Any]:
        """More figures about the latency run's jobs, where the system records them."""
        return {}

    def close(self) -> None:
        pass


@contextmanager
def running_workers(system: System, procs: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [
        spawn(cmd, env, log_name=f"{system.name}-worker")
        for cmd, env in system.worker_commands(procs)
    ]
    try:
        yield started
    finally:
        stop_all(started)


def wait_ready(system: System, r: redis.Redis, procs: int) -> float:
    """Blocks until the workers take jobs; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        ready = system.workers_ready(r, procs)
        if ready is None or ready:
            break
        time.sleep(0.05)
    else:
        raise TimeoutError(f"{system.name}: workers not registered in {READY_TIMEOUT_S}s")
    for _ in range(WARMUP_JOBS):
        system.enqueue_incr(WARMUP_KEY)
    waited = wait_counter(r, WARMUP_KEY, WARMUP_JOBS, READY_TIMEOUT_S)
    if not waited["ok"]:
        raise TimeoutError(f"{system.name}: warm-up jobs not done in {READY_TIMEOUT_S}s")
    time.sleep(0.5)
    return time.monotonic() - start


# -- the measurements ---------------------------------------------------------------------------


def measure_drain(
    system: System, r: redis.Redis, n: int, procs: int, timeout_s: float
) -> dict[str, Any]:
    """Enqueues n jobs one at a time (timed: enqueue throughput, producer cost, memory), then
    starts `procs` workers and times them from start until the counter reaches n."""
    r.flushall()
    reset_stats(r)
    before = snapshot(r)
    start = time.monotonic()
    system.enqueue_incr_many(COUNTER_KEY, n)
    enqueue_s = time.monotonic() - start
    after = snapshot(r)
    producer = cost(before, after, n)
    memory_per_job = (after["used_memory"] - before["used_memory"]) / n

    reset_stats(r)
    before = snapshot(r)
    with running_workers(system, procs):
        waited = wait_counter(r, COUNTER_KEY, n, timeout_s)
        after = snapshot(r)
    worker = cost(before, after, n, polls=waited["polls"])
    result: dict[str, Any] = {
        "n": n,
        "procs": procs,
        "enqueue_single_s": enqueue_s,
        "enqueue_single_jobs_per_s": n / enqueue_s,
        "memory_bytes_per_pending_job": memory_per_job,
        "producer_commands_per_job": producer["commands_per_job"],
        "producer_round_trips_per_job": producer["round_trips_per_job"],
        "producer_commands": producer["by_command"],
        "worker_commands_per_job": worker["commands_per_job"],
        "worker_round_trips_per_job": worker["round_trips_per_job"],
        "worker_commands": worker["by_command"],
        "total_commands_per_job": producer["commands_per_job"] + worker["commands_per_job"],
        "total_round_trips_per_job": producer["round_trips_per_job"]
        + worker["round_trips_per_job"],
        "startup_s": waited["first_s"],
    }
    if not waited["ok"]:
        result.update(
            status="timeout", drain_s=None, drain_jobs_per_s=None, reached=waited["reached"]
        )
        return result
    elapsed = waited["elapsed_s"]
    first = waited["first_s"] or 0.0
    result.update(
        status="ok",
        drain_s=elapsed,
        drain_jobs_per_s=n / elapsed,
        # From the first completed job on: the rate without process start-up.
        steady_jobs_per_s=n / (elapsed - first) if elapsed > first else None,
    )
    return result


def measure_bulk(system: System, r: redis.Redis, n: int) -> dict[str, Any]:
    if system.bulk_api is None:
        return {"status": "n/a", "n": n}
    r.flushall()
    start = time.monotonic()
    system.enqueue_incr_bulk(COUNTER_KEY, n)
    elapsed = time.monotonic() - start
    return {
        "status": "ok",
        "n": n,
        "api": system.bulk_api,
        "enqueue_bulk_s": elapsed,
        "enqueue_bulk_jobs_per_s": n / elapsed,
    }


def measure_latency(
    system: System, r: redis.Redis, rate: float, duration_s: float, procs: int, timeout_s: float
) -> dict[str, Any]:
    """Submits `rate` jobs/s for `duration_s` with `procs` workers running; each job's latency
    is completion minus submission, both read from the Redis server's clock."""
    r.flushall()
    total = int(rate * duration_s)
    with running_workers(system, procs):
        ready_s = wait_ready(system, r, procs)
        start = time.monotonic()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            system.enqueue_latency(COUNTER_KEY, LATENCY_KEY, server_time_us(r))
        submit_s = time.monotonic() - start
        waited = wait_counter(r, COUNTER_KEY, total, timeout_s)
        extra = system.latency_extra(r)
    samples = sorted(int(v) / 1000 for v in r.lrange(LATENCY_KEY, 0, -1))
    result: dict[str, Any] = {
        "status": "ok" if waited["ok"] else "timeout",
        "jobs": total,
        "completed": len(samples),
        "target_rate": rate,
        "achieved_rate": total / submit_s if submit_s > 0 else None,
        "ready_s": ready_s,
    }
    if samples:
        result.update(
            p50_ms=percentile(samples, 50),
            p95_ms=percentile(samples, 95),
            p99_ms=percentile(samples, 99),
            max_ms=samples[-1],
            mean_ms=statistics.fmean(samples),
        )
    result.update(extra)
    return result


# -- the runner's command line ------------------------------------------------------------------


def runner_main(
    factories: dict[str, Callable[[str], System]],
    argv: Sequence[str] | None = None,
    extra: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] | None = None,
) -> int:
    """`<runner> SYSTEM METRIC [options]`: runs one measurement, prints one JSON line."""
    global _PIDFILE
    extra = extra or {}
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(factories))
    parser.add_argument("metric", choices=["drain", "bulk", "latency", *sorted(extra)])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--pidfile", type=Path)
    args = parser.parse_args(argv)
    _PIDFILE = args.pidfile
    signal.signal(signal.SIGTERM, _cleanup_on_signal)
    r = client(args.redis_url)
    try:
        if args.metric in extra:
            result = extra[args.metric](args)
        else:
            system = factories[args.system](args.redis_url)
            try:
                if args.metric == "drain":
                    result = measure_drain(system, r, args.n, args.procs, args.timeout)
                elif args.metric == "bulk":
                    result = measure_bulk(system, r, args.n)
                else:
                    result = measure_latency(
                        system, r, args.rate, args.duration, args.procs, args.timeout
                    )
            finally:
                system.close()
    except Exception as ex:  # reported as a failed figure, not a crashed harness
        result = {"status": "error", "error": f"{type(ex).__name__}: {ex}"}
    finally:
        stop_all(list(_STARTED))
    result.update(system=args.system, metric=args.metric)
    print(json.dumps(result), flush=True)
    return 0 if result.get("status") in ("ok", "n/a") else 1


if __name__ == "__main__":
    sys.exit("run bench.workstream_runner or bench.peers.run_peer")
