"""`workstream limits show|set|clear QUEUE`, through the HTTP API (common/limits.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from workstream.cli.commands import EXIT_OK, Context, Parser, action_adder, positive_int


def add_parser(command: Callable[..., Parser], common: Parser) -> None:
    """The `limits` command group; `command` is build_parser's (it sets the handler)."""
    group = command("limits", cmd_show, "show, set or clear a queue's rate and concurrency limits")
    action = action_adder(group, "limits_command", common, target=("queue", "QUEUE"))

    action("show", cmd_show, "show a queue's limits")
    put = action("set", cmd_set, "replace a queue's limits (an option left out: no limit)")
    put.add_argument("--rate", metavar="N/UNIT", help="jobs started per s, m or h, e.g. 50/s")
    put.add_argument("--concurrency", type=positive_int, metavar="N", help="jobs at once")
    put.add_argument(
        "--group-concurrency", type=positive_int, metavar="N", help="jobs of one group at once"
    )
    action("clear", cmd_clear, "remove every limit of a queue")


def human(queue: str, limits: Mapping[str, Any]) -> str:
    shown = [f"{name}={value}" for name, value in limits.items() if value is not None]
    return f"{queue}: " + (" ".join(shown) if shown else "no limits")


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    limits = ctx.client.limits(args.queue)
    ctx.emit({"queue": args.queue, **limits}, human(args.queue, limits))
    return EXIT_OK


def cmd_set(args: argparse.Namespace, ctx: Context) -> int:
    limits = ctx.client.set_limits(
        args.queue,
        rate=args.rate,
        concurrency=args.concurrency,
        group_concurrency=args.group_concurrency,
    )
    ctx.emit({"queue": args.queue, **limits}, human(args.queue, limits))
    return EXIT_OK


def cmd_clear(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.clear_limits(args.queue)
    ctx.emit({"queue": args.queue, "cleared": True}, f"{args.queue}: no limits")
    return EXIT_OK
