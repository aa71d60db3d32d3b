"""`workstream events`: the job event stream (GET /events), followed until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from workstream.cli.commands import EXIT_OK, Context, Parser, UsageError, positive_int
from workstream.common.durations import parse_duration

# An event id as the API gives it (common/events.py): one position, or one per shard
# (`<ms>-<seq>,<shard>=<ms>-<seq>,...`); passed on unchanged, the API judges it.
_POSITION = r"(?:[a-z0-9_]{1,32}=)?[0-9]{1,20}(?:-[0-9]{1,20})?"
_EVENT_ID = re.compile(rf"{_POSITION}(?:,{_POSITION})*")


def add_parser(command: Callable[..., Parser], common: Parser) -> None:
    """The `events` command; `command` is build_parser's (it sets the handler)."""
    sub = command(
        "events",
        cmd_events,
        "print job events as they happen (created, started, completed, failed, ...), "
        "following until Ctrl-C",
    )
    sub.add_argument("--queue", metavar="Q", help="only this queue's jobs")
    sub.add_argument("--type", metavar="T", help="only jobs of this type")
    sub.add_argument("--job", metavar="ID", help="only this job")
    sub.add_argument(
        "--since",
        metavar="WHEN",
        help="start after an event id (as printed with --json), or this long ago (10m, 1h), "
        "or 0 for the oldest kept; default: from now on",
    )
    sub.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="stop once caught up instead of waiting for more",
    )
    sub.add_argument("--count", type=positive_int, metavar="N", help="stop after N events")


def since_position(raw: str | None, now_ms: Callable[[], int]) -> str | None:
    """An event id or ms time as given; a duration as the time that long ago (in ms)."""
    if raw is None:
        return None
    value = raw.strip()
    if _EVENT_ID.fullmatch(value):
        return value
    try:
        ago = parse_duration(value)
    except ValueError:
        raise UsageError(
            f"--since: expected an event id, a duration such as 10m, or 0, got {raw!r}"
        ) from None
    return str(max(0, now_ms() - int(ago.total_seconds() * 1000)))


def human(event: str, data: Mapping[str, Any]) -> str:
    if event == "gap":
        shard = data.get("shard")
        where = "" if shard is None else f"shard {shard or '(default)'}: "
        return (
            f"-- {where}events after {data.get('after')} were trimmed (EVENTS_MAX) before they "
            f"were read; continuing from {data.get('oldest')}"
        )
    at = data.get("at")
    when = (
        datetime.fromtimestamp(at / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
        if isinstance(at, int)
        else "-"
    )
    parts = [
        when,
        f"{event:<16}",
        str(data.get("job_id", "")),
        f"{data.get('queue', '')}/{data.get('type', '')}",
        f"attempt {data.get('attempt', 0)}",
    ]
    if data.get("worker"):
        parts.append(f"worker {data['worker']}")
    if data.get("detail"):
        parts.append(str(data["detail"]).replace("\n", " ")[:120])
    return "  ".join(parts)


def cmd_events(args: argparse.Namespace, ctx: Context) -> int:
    """One line per event (one JSON object per line with --json), flushed as it arrives."""
    since = since_position(args.since, lambda: int(time.time() * 1000))
    shown = 0
    try:
        for message in ctx.client.events(
            queue=args.queue, type=args.type, job=args.job, since=since, follow=args.follow
        ):
            if ctx.json:
                ctx.out.write(
                    json.dumps({"event": message.event, **message.data}, ensure_ascii=False) + "\n"
                )
            else:
                ctx.out.write(human(message.event, message.data) + "\n")
            ctx.out.flush()
            if message.id is not None:
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how following ends
    return EXIT_OK
