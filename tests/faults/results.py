"""Appends one row per suite run to test-output/reliability-results.json (report.py renders it)."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parents[2] / "test-output" / "reliability-results.json"


def load_rows(path: Path = RESULTS_PATH) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except ValueError:
        return []
    return rows if isinstance(rows, list) else []


def record(
    scenario: str,
    size: str,
    *,
    jobs: int,
    faults: str,
    lost: int,
    duplicates: int | None,
    wall_s: float,
    passed: bool = True,
    notes: str = "",
    path: Path = RESULTS_PATH,
) -> None:
    row = {
        "scenario": scenario,
        "size": size,
        "jobs": jobs,
        "faults": faults,
        "lost": lost,
        "duplicates": duplicates,
        "wall_s": round(wall_s, 1),
        "passed": passed,
        "notes": notes,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Suites run in parallel test processes (pytest-xdist): one writer at a time, or rows vanish.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path.write_text(json.dumps([*load_rows(path), row], indent=1) + "\n")
