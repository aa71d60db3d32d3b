"""`workstream batches list|show|seal`, through the HTTP API."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workstream.cli import tables
from workstream.cli.commands import EXIT_OK, Context, Parser, action_adder, positive_int

COLUMNS = ("ID", "STATE", "TOTAL", "ACTIVE", "COMPLETED", "FAILED", "CANCELLED", "PROGRESS")
BAR_WIDTH = 20


def add_parser(command: Callable[..., Parser], common: Parser) -> None:
    """The `batches` command group; `command` is build_parser's (it sets the handler)."""
    group = command("batches", cmd_list, "list batches, or show or seal one")
    action = action_adder(group, "batches_command", common, target=("id", "ID"))
    listing = action("list", cmd_list, "list batches, newest first, with their progress", False)
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N")
    show = action("show", cmd_show, "show one batch: counts, callbacks and member ids")
    show.add_argument("--limit", type=positive_int, default=20, metavar="N", help="members shown")
    show.add_argument("--cursor", metavar="C", help="the next_cursor of an earlier page")
    action("seal", cmd_seal, "seal an open batch: no more jobs; it settles once all ended")


def bar(progress: Any) -> str:
    """`[#########-----------]  45%` for a fraction in [0, 1]."""
    fraction = min(max(float(progress or 0), 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}%"


def table(batches: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for b in batches:
        counts = b.get("counts") or {}
        rows.append(
            (
                b.get("id"),
                b.get("state"),
                b.get("total"),
                counts.get("active"),
                counts.get("completed"),
                counts.get("failed"),
                counts.get("cancelled"),
                bar(b.get("progress")),
            )
        )
    return tables.render_table(COLUMNS, rows, empty="no batches")


def by_status(statuses: Mapping[str, Any] | None) -> str:
    """Members by their status now, in the order a job moves ("-" for a batch recorded before
    these counts existed)."""
    if not statuses:
        return "-"
    return "  ".join(f"{name} {count}" for name, count in statuses.items())


def detail(batch: Mapping[str, Any]) -> str:
    counts = batch.get("counts") or {}

    def callback(name: str) -> str:
        info = batch.get(name)
        if not info:
            return "-"
        made = "created" if info.get("created") else "not yet"
        return f"{info.get('type')} -> {info.get('queue')} (job {info.get('job_id')}, {made})"

    record = tables.render_record(
        [
            ("id", batch.get("id")),
            ("state", batch.get("state")),
            ("progress", bar(batch.get("progress"))),
            ("total", batch.get("total")),
            *((name, counts.get(name)) for name in ("active", "completed", "failed", "cancelled")),
            ("now", by_status(batch.get("statuses"))),
            ("created_at", tables.timestamp(batch.get("created_at"))),
            ("sealed_at", tables.timestamp(batch.get("sealed_at"))),
            ("settled_at", tables.timestamp(batch.get("settled_at"))),
            ("on_complete", callback("on_complete")),
            ("on_success", callback("on_success")),
            ("failed_ids", ", ".join(batch.get("failed_ids") or []) or "-"),
        ]
    )
    members = batch.get("jobs")
    if not members:
        return record
    rows = [(m.get("id"), m.get("status") or "(expired)") for m in members]
    more = batch.get("next_cursor")
    tail = f"\nmore: --cursor {more}" if more else ""
    return f"{record}\n\n{tables.render_table(('JOB', 'STATUS'), rows)}{tail}"


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    page = ctx.client.batches(limit=getattr(args, "limit", 50))
    ctx.emit(page, table(page.get("batches") or []))
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    batch = ctx.client.batch(args.id, limit=args.limit, cursor=args.cursor)
    ctx.emit(batch, detail(batch))
    return EXIT_OK


def cmd_seal(args: argparse.Namespace, ctx: Context) -> int:
    batch = ctx.client.seal_batch(args.id)
    ctx.emit(batch, detail(batch))
    return EXIT_OK
