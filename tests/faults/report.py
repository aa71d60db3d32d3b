"""Renders test-output/reliability-results.json as a Markdown table.

    python -m tests.faults.report [--size full] [--latest]

--latest keeps only the newest row per (scenario, size)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tests.faults.results import RESULTS_PATH, load_rows

COLUMNS = ("scenario", "size", "jobs", "faults", "lost", "duplicates", "wall_s", "passed", "notes")
HEADERS = (
    "Scenario", "Size", "Jobs", "Faults injected", "Lost", "Duplicates", "Wall (s)", "Pass",
    "Notes",
)  # fmt: skip


def latest_only(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        newest[(row["scenario"], row["size"])] = row
    return list(newest.values())


def cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "n/a"
    if column == "passed":
        return "yes" if value else "**NO**"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cell(row, c) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", help="only rows of this size (fast, full, ...)")
    parser.add_argument("--latest", action="store_true", help="newest row per scenario and size")
    args = parser.parse_args(argv)
    rows = load_rows(RESULTS_PATH)
    if args.size:
        rows = [r for r in rows if str(r["size"]).startswith(args.size)]
    if args.latest:
        rows = latest_only(rows)
    sys.stdout.write(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
