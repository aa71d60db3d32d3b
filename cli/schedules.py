"""`workstream schedules list|show|put|delete|pause|resume`, through the HTTP API."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workstream.cli import tables
from workstream.cli.commands import (
    EXIT_API_ERROR,
    EXIT_OK,
    Context,
    Parser,
    action_adder,
    json_value,
    positive_int,
    positive_seconds,
)

COLUMNS = ("ID", "RUNS ON", "JOB", "NEXT RUN", "LAST RUN", "RUNS", "STATE")


def add_parser(command: Callable[..., Parser], common: Parser) -> None:
    """The `schedules` command group; `command` is build_parser's (it sets the handler)."""
    group = command("schedules", cmd_list, "list schedules, or show, put, delete, pause one")
    action = action_adder(group, "schedules_command", common, target=("id", "ID"))
    action("list", cmd_list, "list every schedule with its next and last run", False)
    action("show", cmd_show, "show one schedule")
    put = action("put", cmd_put, "create or replace a schedule")
    timing = put.add_mutually_exclusive_group(required=True)
    timing.add_argument("--cron", metavar="EXPR", help="e.g. '*/5 * * * *'")
    timing.add_argument("--every", metavar="DURATION", help="e.g. 30s, 5m, 1h (at least 1s)")
    put.add_argument("--timezone", metavar="TZ", help="IANA zone for --cron (default UTC)")
    put.add_argument("--type", required=True, metavar="TYPE", help="the job's handler name")
    put.add_argument("--payload", type=json_value, metavar="JSON", help="the job's payload")
    put.add_argument("--queue", metavar="Q")
    put.add_argument("--max-attempts", type=positive_int, metavar="N")
    put.add_argument("--timeout", type=positive_seconds, metavar="S")
    put.add_argument(
        "--missed",
        choices=("run_once", "skip"),
        help="after downtime: enqueue one run for the missed window (run_once, the default) "
        "or none (skip)",
    )
    put.add_argument("--paused", action="store_true", help="store it paused")
    delete = action("delete", cmd_delete, "delete a schedule (its jobs stay)")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    action("pause", cmd_pause, "stop a schedule firing")
    action("resume", cmd_resume, "let a schedule fire again, from now")


def definition(args: argparse.Namespace) -> dict[str, Any]:
    job: dict[str, Any] = {"type": args.type}
    for name in ("payload", "queue", "max_attempts", "timeout"):
        if getattr(args, name) is not None:
            job[name] = getattr(args, name)
    body: dict[str, Any] = {"job": job}
    if args.cron is not None:
        body["cron"] = args.cron
    else:
        body["every"] = args.every
    if args.timezone is not None:
        body["timezone"] = args.timezone
    if args.missed is not None:
        body["missed"] = args.missed
    if args.paused:
        body["paused"] = True
    return body


def table(schedules: Sequence[Mapping[str, Any]]) -> str:
    if not schedules:
        return "no schedules"
    rows = [COLUMNS]
    for s in schedules:
        runs_on = (
            f"cron {s['cron']} {s.get('timezone', '')}" if "cron" in s else f"every {s['every']}"
        )
        job = s.get("job") or {}
        rows.append(
            (
                str(s["id"]),
                runs_on.strip(),
                f"{job.get('type')} -> {job.get('queue')}",
                str(s.get("next_run_at") or "-"),
                str(s.get("last_run_at") or "-"),
                str(s.get("runs", 0)),
                "paused" if s.get("paused") else "active",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _one(ctx: Context, schedule: dict[str, Any]) -> int:
    ctx.emit(schedule, table([schedule]))
    return EXIT_OK


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    schedules = ctx.client.schedules()
    ctx.emit({"schedules": schedules}, table(schedules))
    return EXIT_OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    schedule = ctx.client.schedule(args.id)
    human = tables.render_record(list(schedule.items()))
    ctx.emit(schedule, human)
    return EXIT_OK


def cmd_put(args: argparse.Namespace, ctx: Context) -> int:
    return _one(ctx, ctx.client.put_schedule(args.id, definition(args)))


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    question = f"delete schedule {args.id}?"
    if not ctx.confirm(args.yes, question, f"schedules delete removes schedule {args.id}"):
        return EXIT_API_ERROR
    ctx.client.delete_schedule(args.id)
    ctx.emit({"schedule": args.id, "deleted": True}, f"deleted schedule {args.id}")
    return EXIT_OK


def cmd_pause(args: argparse.Namespace, ctx: Context) -> int:
    return _one(ctx, ctx.client.pause_schedule(args.id))


def cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    return _one(ctx, ctx.client.resume_schedule(args.id))
