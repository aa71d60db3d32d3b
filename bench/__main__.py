"""`python -m bench [--quick] [--only NAME,...] [--skip-peers] [--skip-workstream] [--scaling]`

Starts a private redis-server, makes bench/.venv-peers for the peer queues, then measures
WorkStream and each peer in turn through one runner subprocess per measurement (WorkStream's in
this interpreter, the peers' in the peers' venv), and writes bench/results/latest.{md,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.core import REPO_ROOT, kill_pidfile
from bench.redis_server import RedisServer, server_version

BENCH_DIR = REPO_ROOT / "bench"
PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"
STAMP = PEERS_VENV / ".requirements-sha256"
PEERS = ("huey", "dramatiq", "celery", "rq", "arq")
SYSTEMS = ("workstream", *PEERS)
SCALING_PROCS = (1, 2, 4, 8)
INSTALL_TIMEOUT_S = 900
RUNNER_MARGIN_S = 240  # enqueueing, worker start and stop around the drain's own timeout


def ensure_peers_venv() -> None:
    """bench/.venv-peers with requirements-peers.txt; skipped while the stamp matches."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if PEERS_PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    print(f"creating {PEERS_VENV.relative_to(REPO_ROOT)} ...", flush=True)
    if not PEERS_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, timeout=300)
    pip = [str(PEERS_PYTHON), "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "-r", str(REQUIREMENTS), "redis", "hiredis"], check=True, timeout=INSTALL_TIMEOUT_S
    )
    STAMP.write_text(digest + "\n")


def run_one(
    system: str,
    metric: str,
    redis_url: str,
    opts: dict[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """One runner subprocess; its JSON line, or a timeout/error record."""
    if system.startswith("workstream"):
        cmd = [sys.executable, "-m", "bench.workstream_runner"]
    else:
        cmd = [str(PEERS_PYTHON), "-m", "bench.peers.run_peer"]
    with tempfile.NamedTemporaryFile(prefix="bench-pids-", delete=False) as pidfile:
        pid_path = Path(pidfile.name)
    cmd += [system, metric, "--redis-url", redis_url, "--pidfile", str(pid_path)]
    for name, value in opts.items():
        cmd += [f"--{name}", str(value)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the runner stops its workers on SIGTERM
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        return {"status": "timeout", "system": system, "metric": metric}
    finally:
        kill_pidfile(pid_path)
        pid_path.unlink(missing_ok=True)
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    return {"status": "error", "system": system, "metric": metric, "error": (err or out)[-1500:]}


def plan(args: argparse.Namespace) -> list[tuple[str, str, str, dict[str, Any], float]]:
    """(label, system, metric, options, timeout) for one round of measurements."""
    common = {"timeout": args.timeout}
    lat = {"rate": args.rate, "duration": args.duration, "timeout": args.timeout}
    steps: list[tuple[str, str, str, dict[str, Any], float]] = []
    budget = args.timeout + RUNNER_MARGIN_S
    for system in args.systems:
        steps.append((system, system, "drain", {"n": args.n, "procs": 2, **common}, budget))
        steps.append((system, system, "bulk", {"n": args.n}, budget))
        steps.append((system, system, "latency", {"procs": 2, **lat}, budget))
        if system == "workstream":
            steps.append(
                (
                    "workstream-32",
                    "workstream-32",
                    "drain",
                    {"n": args.n, "procs": 2, **common},
                    budget,
                )
            )
            steps.append(
                ("workstream-http", "workstream-http", "latency", {"procs": 2, **lat}, budget)
            )
            steps.append(("workstream-http", "workstream", "http-enqueue", {"n": args.n}, budget))
    return steps


def machine_info(redis_binary: str, with_peers: bool) -> dict[str, Any]:
    cpu = "unknown"
    memory_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "redis_server": server_version(redis_binary),
        "packages": _versions(
            sys.executable, ["workstream", "redis", "hiredis", "falcon", "waitress"]
        ),
    }
    if with_peers and PEERS_PYTHON.exists():
        info["peer_packages"] = _versions(
            str(PEERS_PYTHON),
            ["huey", "dramatiq", "celery", "kombu", "rq", "arq", "redis", "hiredis"],
        )
    return info


def _versions(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'missing'\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, timeout=60)
    try:
        versions: dict[str, str] = json.loads(done.stdout)
        return versions
    except json.JSONDecodeError:
        return {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3,000 jobs, 1 run, 3 s latency")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--skip-workstream", action="store_true")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also WorkStream's drain with 1, 2, 4, 8 worker processes",
    )
    parser.add_argument("--runs", type=int, help="repeats of each figure (3; quick: 1)")
    parser.add_argument("--n", type=int, help="jobs per drain/enqueue run (20000; quick: 3000)")
    parser.add_argument("--rate", type=float, default=200.0, help="latency test jobs/s")
    parser.add_argument("--duration", type=float, help="latency test seconds (10; quick: 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="drain/wait bound, seconds")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.n = args.n or (3000 if args.quick else 20000)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    systems = list(SYSTEMS)
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(SYSTEMS))
        if unknown:
            parser.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
        systems = [name for name in systems if name in wanted]
    if args.skip_peers:
        systems = [name for name in systems if name not in PEERS]
    if args.skip_workstream:
        systems = [name for name in systems if name != "workstream"]
    args.systems = systems
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with_peers = any(name in PEERS for name in args.systems)
    if with_peers:
        ensure_peers_venv()
    runs: list[dict[str, Any]] = []
    started = time.time()
    with RedisServer() as server:
        print(f"redis-server {server.url} (private)", flush=True)
        steps = plan(args)
        for round_no in range(1, args.runs + 1):
            for label, system, metric, opts, timeout_s in steps:
                print(f"[run {round_no}/{args.runs}] {label} {metric} ...", end=" ", flush=True)
                result = run_one(system, metric, server.url, opts, timeout_s)
                result.update(label=label, run=round_no)
                print(report.one_line(result), flush=True)
                runs.append(result)
        if args.scaling and not args.skip_workstream:
            for procs in SCALING_PROCS:
                for round_no in range(1, args.runs + 1):
                    opts = {"n": args.n, "procs": procs, "timeout": args.timeout}
                    print(f"[scaling {procs} procs, run {round_no}]", end=" ", flush=True)
                    result = run_one(
                        "workstream", "drain", server.url, opts, args.timeout + RUNNER_MARGIN_S
                    )
                    result.update(label=f"scaling-{procs}", run=round_no)
                    print(report.one_line(result), flush=True)
                    runs.append(result)
        info = machine_info(server.binary, with_peers)
    settings = {
        "quick": args.quick,
        "runs": args.runs,
        "n": args.n,
        "rate": args.rate,
        "duration_s": args.duration,
        "timeout_s": args.timeout,
        "systems": args.systems,
        "scaling": args.scaling,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
    }
    paths = report.write(BENCH_DIR / "results", settings, info, runs)
    for path in paths:
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
