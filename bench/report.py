"""Turns the runs into bench/results/latest.{md,json} plus timestamped copies: each figure as the
median of its runs with the min-max range."""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEER_ORDER = ("workstream", "huey", "dramatiq", "celery", "rq", "arq")


def one_line(result: dict[str, Any]) -> str:
    """A progress line for the console."""
    status = str(result.get("status"))
    if status not in ("ok", "n/a"):
        return f"{status}: {result.get('error', '')}"[:300]
    keys = (
        "drain_jobs_per_s",
        "enqueue_single_jobs_per_s",
        "enqueue_bulk_jobs_per_s",
        "p50_ms",
        "p99_ms",
        "post_jobs_1_clients_jobs_per_s",
        "post_jobs_8_clients_jobs_per_s",
        "post_jobs_8_clients_2_procs_jobs_per_s",
        "post_jobs_8_clients_8_procs_jobs_per_s",
        "post_jobs_batch_jobs_per_s",
    )
    parts = [f"{key}={result[key]:.1f}" for key in keys if isinstance(result.get(key), float)]
    return status + (" " + " ".join(parts) if parts else "")


def summarize(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def figures(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """label -> field -> {median, min, max, runs} (or a status string when no run succeeded)."""
    grouped: dict[str, dict[str, list[Any]]] = {}
    for run in runs:
        fields = grouped.setdefault(run.get("label", run.get("system", "?")), {})
        prefix = (
            "http_" if run.get("label") == "workstream-http" and run["metric"] == "latency" else ""
        )
        if run.get("status") not in ("ok", "n/a", "errors"):
            fields.setdefault(f"{run['metric']}_status", []).append(run.get("status"))
            fields.setdefault(f"{run['metric']}_failed", []).append(1.0)
            continue
        if run.get("status") == "n/a":
            fields.setdefault(f"{run['metric']}_status", []).append("n/a")
        for key, value in run.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                fields.setdefault(prefix + key, []).append(float(value))
            elif key in ("api", "producer_commands", "worker_commands"):
                fields.setdefault(prefix + key, []).append(value)
    out: dict[str, dict[str, Any]] = {}
    for label, fields in grouped.items():
        out[label] = {}
        for key, values in fields.items():
            numbers = [v for v in values if isinstance(v, float) and math.isfinite(v)]
            out[label][key] = summarize(numbers) if numbers else values[-1]
    return out


def _fmt(figure: Any, digits: int = 0, status: Any = None) -> str:
    if not isinstance(figure, dict):
        return str(status) if status else "—"
    med, low, high = figure["median"], figure["min"], figure["max"]
    if figure["runs"] == 1 or low == high:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def _ratio(ours: Any, theirs: Any) -> str:
    if isinstance(ours, dict) and isinstance(theirs, dict) and theirs["median"]:
        return f"{ours['median'] / theirs['median']:.2f}x"
    return "—"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def markdown(
    settings: dict[str, Any],
    info: dict[str, Any],
    figs: dict[str, dict[str, Any]],
) -> str:
    labels = [name for name in PEER_ORDER if name in figs]
    ws = figs.get("workstream", {})

    def get(label: str, key: str) -> Any:
        return figs.get(label, {}).get(key)

    def cells(label: str, keys: list[tuple[str, int]], status_key: str) -> list[str]:
        status = get(label, status_key)
        failed = get(label, status_key.replace("_status", "_failed"))
        note = f" [{failed['runs']} {status}]" if isinstance(failed, dict) else ""
        return [
            _fmt(get(label, key), digits, status) + (note if get(label, key) else "")
            for key, digits in keys
        ]

    n = settings["n"]
    out = [
        "# WorkStream benchmark results",
        "",
        f"Run {settings['started']} ({'quick' if settings['quick'] else 'full'} mode, "
        f"{settings['runs']} run(s) per figure, median with min-max in brackets; "
        f"{settings['wall_s']} s wall).",
        "",
        f"Machine: {info.get('nproc')} CPUs ({info.get('cpu_model')}), "
        f"{info.get('memory_gib')} GiB, Python {info.get('python')}, "
        f"redis-server {info.get('redis_server')}.",
        "",
        f"## Summary ({n:,} jobs; 2 worker processes; latency at {settings['rate']:.0f} jobs/s "
        f"for {settings['duration_s']:.0f} s)",
        "",
    ]
    rows = []
    for label in labels:
        rows.append(
            [
                label,
                _fmt(get(label, "drain_jobs_per_s"), 0, get(label, "drain_status")),
                "1.00x"
                if label == "workstream"
                else _ratio(ws.get("drain_jobs_per_s"), get(label, "drain_jobs_per_s")),
                *cells(label, [("enqueue_single_jobs_per_s", 0)], "drain_status"),
                *cells(label, [("enqueue_bulk_jobs_per_s", 0)], "bulk_status"),
                *cells(label, [("p50_ms", 1), ("p99_ms", 1)], "latency_status"),
                *cells(
                    label,
                    [
                        ("total_commands_per_job", 1),
                        ("total_round_trips_per_job", 2),
                        ("memory_bytes_per_pending_job", 0),
                    ],
                    "drain_status",
                ),
            ]
        )
    out += _table(
        [
            "system",
            "drain jobs/s",
            "WorkStream/peer (drain)",
            "enqueue 1-by-1 jobs/s",
            "enqueue bulk jobs/s",
            "latency p50 ms",
            "latency p99 ms",
            "Redis cmds/job",
            "round trips/job",
            "bytes/pending job",
        ],
        rows,
    )

    out += [
        "## Drain throughput",
        "",
        f"{n:,} no-op jobs (one INCR each) pre-enqueued, then 2 worker processes started; "
        "timed from worker start until the shared counter reaches N (polled every 10 ms). "
        "`steady` excludes process start-up (timed from the first completed job).",
        "",
    ]
    rows = [
        [
            label,
            *cells(
                label,
                [
                    ("drain_jobs_per_s", 0),
                    ("steady_jobs_per_s", 0),
                    ("startup_s", 2),
                    ("drain_s", 2),
                ],
                "drain_status",
            ),
        ]
        for label in [*labels[:1], "workstream-32", *labels[1:]]
        if label in figs
    ]
    out += _table(["system", "jobs/s", "steady jobs/s", "start-up s", "drain s"], rows)
    if "workstream-32" in figs:
        out += [
            "`workstream` runs at its defaults (WORKER_COUNT=10 slots per process), as every "
            "peer runs at its own; `workstream-32` is the same with WORKER_COUNT=32.",
            "",
        ]

    out += ["## Enqueue throughput", "", "One producer thread, no workers running.", ""]
    rows = [
        [
            label,
            *cells(label, [("enqueue_single_jobs_per_s", 0)], "drain_status"),
            *cells(label, [("enqueue_bulk_jobs_per_s", 0)], "bulk_status"),
            str(get(label, "api") or "n/a"),
        ]
        for label in labels
    ]
    out += _table(["system", "one at a time jobs/s", "bulk jobs/s", "bulk API"], rows)

    if "workstream-http" in figs:
        http_rows = [
            [
                "POST /jobs, 1 client",
                _fmt(get("workstream-http", "post_jobs_1_clients_jobs_per_s")),
            ],
            [
                "POST /jobs, 8 client processes",
                _fmt(get("workstream-http", "post_jobs_8_clients_jobs_per_s")),
            ],
            [
                "POST /jobs, 8 client processes, API_PROCESSES=2",
                _fmt(get("workstream-http", "post_jobs_8_clients_2_procs_jobs_per_s")),
            ],
            [
                "POST /jobs, 8 client processes, API_PROCESSES=8",
                _fmt(get("workstream-http", "post_jobs_8_clients_8_procs_jobs_per_s")),
            ],
            [
                "POST /jobs/batch (1000 per request)",
                _fmt(get("workstream-http", "post_jobs_batch_jobs_per_s")),
            ],
        ]
        out += [
            "## WorkStream over HTTP",
            "",
            "`workstream-api` (waitress, API_THREADS=256, one process unless noted) on "
            "loopback. 1 client and batches: one keep-alive http.client connection. 8 "
            "clients: 8 client processes (multiprocessing), each with one keep-alive socket "
            "driven by a minimal HTTP/1.1 client (pre-encoded request, Content-Length "
            "framing, ~30 us CPU per request against http.client's ~115 us, CPU the server "
            "would otherwise lose on a small machine).",
            "",
        ]
        out += _table(["submission path", "jobs/s"], http_rows)

    out += [
        "## End-to-end latency",
        "",
        f"{settings['rate']:.0f} jobs/s paced for {settings['duration_s']:.0f} s with 2 worker "
        "processes running; submission time is Redis `TIME` read just before submitting, "
        "completion time is Redis `TIME` inside the handler's one Lua call.",
        "",
    ]
    lat_rows = []
    keys = [("p50_ms", 1), ("p95_ms", 1), ("p99_ms", 1), ("max_ms", 1), ("achieved_rate", 0)]
    for label in labels:
        lat_rows.append([label, *cells(label, keys, "latency_status")])
        if label == "workstream" and "workstream-http" in figs:
            http_keys = [("http_" + key, digits) for key, digits in keys]
            lat_rows.append(
                ["workstream (POST /jobs)", *cells("workstream-http", http_keys, "latency_status")]
            )
    out += _table(["system", "p50 ms", "p95 ms", "p99 ms", "max ms", "achieved jobs/s"], lat_rows)
    if get("workstream", "hash_p50_ms"):
        out += [
            "WorkStream's own job hash timestamps (created_at → finished_at, ms resolution, "
            "includes the completion script): p50 "
            f"{_fmt(get('workstream', 'hash_p50_ms'), 1)}, p99 "
            f"{_fmt(get('workstream', 'hash_p99_ms'), 1)} ms.",
            "",
        ]

    out += [
        "## Redis cost per job",
        "",
        "From `INFO commandstats` (CONFIG RESETSTAT before, diff after) over the drain run: "
        "producer = enqueueing N jobs one at a time; worker = everything the workers sent "
        "while draining (start-up and idle polling included). Commands count those run "
        "inside Lua scripts too; round trips are `total_reads_processed` events (one per "
        "request or pipelined batch). Memory is the `used_memory` delta per pending job "
        f"with {n:,} jobs queued.",
        "",
    ]
    keys = [
        ("producer_commands_per_job", 1),
        ("worker_commands_per_job", 1),
        ("total_commands_per_job", 1),
        ("producer_round_trips_per_job", 2),
        ("worker_round_trips_per_job", 2),
        ("memory_bytes_per_pending_job", 0),
    ]
    rows = [[label, *cells(label, keys, "drain_status")] for label in labels]
    out += _table(
        [
            "system",
            "cmds/job producer",
            "cmds/job worker",
            "cmds/job total",
            "round trips producer",
            "round trips worker",
            "bytes/pending job",
        ],
        rows,
    )

    scaling = sorted(
        (k for k in figs if k.startswith("scaling-")), key=lambda k: int(k.split("-")[1])
    )
    if scaling:
        out += ["## WorkStream drain scaling", ""]
        rows = [
            [
                k.split("-")[1],
                *cells(k, [("drain_jobs_per_s", 0), ("steady_jobs_per_s", 0)], "drain_status"),
            ]
            for k in scaling
        ]
        out += _table(["worker processes", "jobs/s", "steady jobs/s"], rows)

    out += ["## Versions", "", "```", json.dumps(info, indent=2), "```", ""]
    return "\n".join(out)


def write(
    results_dir: Path, settings: dict[str, Any], info: dict[str, Any], runs: list[dict[str, Any]]
) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    figs = figures(runs)
    document = {"settings": settings, "machine": info, "figures": figs, "runs": runs}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    suffix = "-quick" if settings["quick"] else ""
    paths = []
    writers: list[tuple[str, Callable[[], str]]] = [
        ("json", lambda: json.dumps(document, indent=2, sort_keys=False) + "\n"),
        ("md", lambda: markdown(settings, info, figs)),
    ]
    for ext, render in writers:
        latest = results_dir / f"latest.{ext}"
        latest.write_text(render(), encoding="utf-8")
        copy = results_dir / f"{stamp}{suffix}.{ext}"
        shutil.copyfile(latest, copy)
        paths += [latest, copy]
    return paths
