"""`python -m bench.events`: what the job event stream adds per job in Redis, on and off.

Each round drives N jobs through the hot path on a private redis-server, in process (no
worker processes, so only Redis's side is measured): enqueue in batches of 100 (one script
call each), claim 100, complete those 100 in one call; every job leaves 3 events (created,
started, completed). Modes, interleaved round by round, medians reported:
- off:     EVENTS_MAX=0 (one GET per script call, nothing written)
- on:      EVENTS_MAX=100000, the default, not reached (the stream only grows)
- trimmed: EVENTS_MAX=1000, reached at once (every XADD may trim a node)
Figures per job: Redis time inside scripts (INFO commandstats evalsha usec), Redis CPU
(INFO cpu used_cpu_user + used_cpu_sys), used_memory growth, and the stream's own MEMORY
USAGE per entry. Every process is started here and stopped by its pid.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import redis

from bench.redis_server import RedisServer
from workstream.common import events
from workstream.common.jobs import JobSpec
from workstream.common.settings import Settings
from workstream.common.store import JobStore

BATCH = 100
MODES = {"off": 0, "on": 100_000, "trimmed": 1_000}


def cpu_s(r: redis.Redis) -> float:
    info: Any = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def one_round(url: str, events_max: int, jobs: int) -> dict[str, float]:
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushall()
    settings = Settings.from_environ({"REDIS_URL": url})
    store = JobStore(r, settings)
    events.configure(r, store.keys, events_max)
    # Warm: scripts loaded, queue and type known, so the round measures the steady state.
    store.enqueue_many([JobSpec(type="echo") for _ in range(BATCH)])
    for job in store.claim("w", BATCH, ["default"]):
        store.complete("w", job, "1")
    r.config_resetstat()
    memory_before = int(r.info("memory")["used_memory"])
    stream_before = int(r.memory_usage(store.keys.events, samples=0) or 0)
    cpu_before, started = cpu_s(r), time.monotonic()
    for _ in range(jobs // BATCH):
        store.enqueue_many([JobSpec(type="echo") for _ in range(BATCH)])
        claimed = store.claim("w", BATCH, ["default"])
        store.complete_many("w", [(job, "1") for job in claimed], 0, ())
    elapsed = time.monotonic() - started
    cpu = cpu_s(r) - cpu_before
    stats: Any = r.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {"usec": 0})
    length = int(r.xlen(store.keys.events))
    stream = int(r.memory_usage(store.keys.events, samples=0) or 0)
    memory = int(r.info("memory")["used_memory"]) - memory_before
    r.close()
    return {
        "lua_us_per_job": float(evalsha["usec"]) / jobs,
        "redis_cpu_us_per_job": cpu / jobs * 1e6,
        "used_memory_bytes_per_job": memory / jobs,
        "stream_bytes_per_job": (stream - stream_before) / jobs,
        "stream_bytes_per_entry": stream / length if length else 0.0,
        "stream_entries": length,
        "jobs_per_s": jobs / elapsed,
    }


# One script appending `n` entries shaped as _events.lua's (MAXLEN ~ cap), and one looping as
# much without them: the difference is Redis's time per event, free of the client's traffic.
XADD_LOOP = """
local emit = tonumber(ARGV[2]) == 1
for i = 1, tonumber(ARGV[1]) do
  if emit then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'ev', 'completed',
      'job', '0123456789abcdef0123456789abcdef', 'status', 'completed', 'queue', 'default',
      'type', 'echo', 'attempt', 1, 'worker', 'host-1234-abcd', 'detail', '')
  end
end
return 0
"""


def per_event_us(url: str, cap: int, n: int = 50_000, repeats: int = 5) -> dict[str, float]:
    """Median cost per appended entry, minus the loop's own: Redis CPU (used_cpu, which a
    busy host inflates less) and script time (commandstats, wall clock inside Redis)."""
    r = redis.Redis.from_url(url, decode_responses=True)
    cpu: dict[int, list[float]] = {1: [], 0: []}
    wall: dict[int, list[float]] = {1: [], 0: []}
    for _ in range(repeats):
        r.delete("bench:events")
        for emit in (1, 0):
            r.config_resetstat()
            before = cpu_s(r)
            r.eval(XADD_LOOP, 1, "bench:events", n, emit, cap)
            cpu[emit].append(cpu_s(r) - before)
            stats: Any = r.info("commandstats")
            wall[emit].append(float(stats["cmdstat_eval"]["usec"]))
    r.delete("bench:events")
    r.close()
    return {
        "cpu_us": (statistics.median(cpu[1]) - statistics.median(cpu[0])) / n * 1e6,
        "script_us": (statistics.median(wall[1]) - statistics.median(wall[0])) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with RedisServer() as server:
        for _ in range(args.rounds):
            for mode, events_max in MODES.items():
                results[mode].append(one_round(server.url, events_max, args.jobs))
        xadd_us = {cap: per_event_us(server.url, cap) for cap in (100_000, 1_000)}
    medians = {
        mode: {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
        for mode, rounds in results.items()
    }
    if args.json:
        print(json.dumps({"rounds": medians, "xadd_us_per_event": xadd_us}, indent=2))
        return
    off = medians["off"]
    print(
        f"{args.jobs} jobs x {args.rounds} rounds per mode (medians); 3 events per job\n"
        f"{'mode':<8} {'lua us/job':>10} {'cpu us/job':>10} {'mem B/job':>10} "
        f"{'stream B/job':>12} {'B/entry':>8} {'entries':>8} {'jobs/s':>8}"
    )
    for mode, m in medians.items():
        print(
            f"{mode:<8} {m['lua_us_per_job']:>10.1f} {m['redis_cpu_us_per_job']:>10.1f} "
            f"{m['used_memory_bytes_per_job']:>10.0f} {m['stream_bytes_per_job']:>12.1f} "
            f"{m['stream_bytes_per_entry']:>8.1f} {m['stream_entries']:>8.0f} "
            f"{m['jobs_per_s']:>8.0f}"
        )
    for mode in ("on", "trimmed"):
        m = medians[mode]
        print(
            f"{mode} - off: +{m['lua_us_per_job'] - off['lua_us_per_job']:.1f} us of script "
            f"time, +{m['redis_cpu_us_per_job'] - off['redis_cpu_us_per_job']:.1f} us of Redis "
            f"CPU, +{m['used_memory_bytes_per_job'] - off['used_memory_bytes_per_job']:.0f} B "
            "of memory per job"
        )

    for cap, label in ((100_000, "stream growing"), (1_000, "trimmed at 1,000")):
        print(
            f"one XADD as the scripts write it ({label}): {xadd_us[cap]['cpu_us']:.2f} us of "
            f"Redis CPU, {xadd_us[cap]['script_us']:.2f} us of script time"
        )


if __name__ == "__main__":
    main()
