"""The `workstream` command line: argument parsing and one function per subcommand.

Each command takes the parsed arguments and a Context (client, streams, output mode) and
returns the exit status; API failures surface as client.ApiError / client.Unreachable and are
turned into exit codes by __main__."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

from workstream.cli import tables
from workstream.cli.client import DEFAULT_API_URL, MAX_SERVER_WAIT_S, ApiError, Client
from workstream.cli.progress import ProgressBar

BATCH_SIZE = 1000  # the API's per-request cap on POST /jobs/batch
PAGE_SIZE = 500  # the API's cap on GET /jobs?limit=
MAX_LIST = 100_000
MAX_COUNT = 10_000_000
DEFAULT_WAIT_S = 30.0
QUEUE_FULL_RETRIES = 30
QUEUE_FULL_PAUSE_MAX_S = 10.0
# A long-poll that comes back early and unfinished (the API ran out of waiting slots) is
# repeated after this pause rather than at once.
EARLY_ANSWER_PAUSE_S = 0.5
STATUSES = ("scheduled", "pending", "processing", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})

Handler = Callable[[argparse.Namespace, "Context"], int]


class UsageError(Exception):
    """A mistake in how the command was called (exit 2)."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: `workstream submit: error: ... (see --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


@dataclass
class Context:
    api_url: str
    token: str | None
    json: bool
    progress: bool
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    sleep: Callable[[float], None] = time.sleep
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            try:
                self._client = Client(self.api_url, self.token)
            except ValueError as ex:
                raise UsageError(f"--api-url: {ex}") from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def emit(self, data: Any, human: str) -> None:
        """The raw JSON with --json, else the human rendering."""
        if self.json:
            indent = 2 if self.out.isatty() else None
            self.out.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
        elif human:
            self.out.write(human + "\n")


def context_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Context:
    token = getattr(args, "token", None)
    if token is None:
        # API_TOKEN may list several accepted tokens (the server's format); any one works.
        token = next((t.strip() for t in environ.get("API_TOKEN", "").split(",") if t.strip()), "")
    return Context(
        api_url=getattr(args, "api_url", None) or environ.get("API_URL") or DEFAULT_API_URL,
        token=token or None,
        json=bool(getattr(args, "json", False)),
        progress=bool(getattr(args, "progress", False)),
        environ=environ,
    )


# -- argument types --------------------------------------------------------------------------


def json_value(raw: str) -> Any:
    """JSON text, or `@path` to read it from a file."""
    text = raw
    if raw.startswith("@"):
        try:
            with open(raw[1:], encoding="utf-8") as source:
                text = source.read()
        except OSError as ex:
            raise argparse.ArgumentTypeError(f"cannot read {raw[1:]!r}: {ex.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"not valid JSON ({ex})") from None


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def nonnegative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {raw!r}")
    return value


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {raw!r}")
    return value


def port(raw: str) -> int:
    value = positive_int(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {raw!r}")
    return value


# -- parser ----------------------------------------------------------------------------------


def _global_options() -> Parser:
    """Accepted both before and after the subcommand. SUPPRESS keeps a subcommand's parser from
    overwriting a value given before it with its own default."""
    options = Parser(add_help=False)
    group = options.add_argument_group("global options")
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the raw JSON"
    )
    group.add_argument(
        "--api-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"API base URL (env API_URL, default {DEFAULT_API_URL})",
    )
    group.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (env API_TOKEN)")
    group.add_argument(
        "--progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show progress bars even when stderr is not a terminal",
    )
    return options


def build_parser() -> Parser:
    common = _global_options()
    parser = Parser(
        prog="workstream",
        description="Operate a WorkStream job queue through its REST API.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str) -> Parser:
        sub: Parser = commands.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        sub.set_defaults(handler=handler)
        return sub

    dev = command("dev", cmd_dev, "run Redis, the API and workers in the foreground")
    dev.add_argument("--workers", type=nonnegative_int, default=2, help="worker processes (2)")
    dev.add_argument("--port", type=port, help="API port (env PORT, default 8080)")

    submit = command("submit", cmd_submit, "submit a job, or --count copies of it")
    submit.add_argument("type", metavar="TYPE", help="handler name, e.g. echo")
    submit.add_argument(
        "--payload",
        type=json_value,
        default={},
        metavar="JSON",
        help="job payload as JSON, or @file (default {})",
    )
    submit.add_argument("--queue", metavar="Q", help="queue name (API default: default)")
    submit.add_argument(
        "--count", type=positive_int, default=1, metavar="N", help="submit N copies in batches"
    )
    submit.add_argument("--delay", type=seconds, metavar="S", help="run after S seconds")
    submit.add_argument(
        "--max-attempts", type=positive_int, metavar="N", help="attempts before the job fails"
    )

    status = command("status", cmd_status, "show one job")
    status.add_argument("id", metavar="ID")
    status.add_argument(
        "--wait",
        type=seconds,
        nargs="?",
        const=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"wait until the job finishes, at most SECONDS (default {DEFAULT_WAIT_S:g})",
    )

    jobs = command("jobs", cmd_jobs, "list jobs, newest first")
    jobs.add_argument("--status", choices=STATUSES)
    jobs.add_argument("--queue", metavar="Q")
    jobs.add_argument("--type", metavar="T")
    jobs.add_argument("--limit", type=positive_int, default=50, metavar="N")
    jobs.add_argument("--cursor", help="continue a listing (printed after a full page)")

    queues = command("queues", cmd_queues, "show every queue's counts, or delete an empty one")
    queue_commands = queues.add_subparsers(dest="queues_command", metavar="ACTION")
    delete_queue = queue_commands.add_parser(
        "delete",
        parents=[common],
        help="forget an empty queue: its name, paused flag and counters",
        description="forget an empty queue: its name, paused flag and counters",
    )
    delete_queue.set_defaults(handler=cmd_queue_delete)
    delete_queue.add_argument("queue", metavar="QUEUE")
    command("workers", cmd_workers, "show the live workers")

    failed = command("failed", cmd_failed_list, "list, retry or purge failed jobs")
    failed_commands = failed.add_subparsers(dest="failed_command", metavar="ACTION", required=True)

    def failed_action(name: str, handler: Handler, help_text: str) -> Parser:
        sub: Parser = failed_commands.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        sub.set_defaults(handler=handler)
        return sub

    failed_list = failed_action("list", cmd_failed_list, "list failed jobs")
    failed_list.add_argument("--queue", metavar="Q")
    failed_list.add_argument("--limit", type=positive_int, default=50, metavar="N")
    failed_retry = failed_action("retry", cmd_failed_retry, "requeue a queue's failed jobs")
    failed_retry.add_argument("--queue", metavar="Q", required=True)
    failed_purge = failed_action("purge", cmd_failed_purge, "delete a queue's failed jobs")
    failed_purge.add_argument("--queue", metavar="Q", required=True)
    failed_purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    pause = command("pause", cmd_pause, "stop workers taking jobs from a queue")
    pause.add_argument("queue", metavar="QUEUE")
    resume = command("resume", cmd_resume, "let workers take jobs from a queue again")
    resume.add_argument("queue", metavar="QUEUE")
    return parser


# -- commands --------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, ctx: Context) -> int:
    from workstream.cli.dev import run_dev  # only `dev` needs the process machinery

    return run_dev(workers=args.workers, port=args.port, environ=ctx.environ, out=ctx.out)


def job_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"type": args.type, "payload": args.payload}
    if args.queue is not None:
        body["queue"] = args.queue
    if args.delay is not None:
        body["delay"] = args.delay
    if args.max_attempts is not None:
        body["max_attempts"] = args.max_attempts
    return body


def cmd_submit(args: argparse.Namespace, ctx: Context) -> int:
    if args.count > MAX_COUNT:
        raise UsageError(f"--count: at most {MAX_COUNT}")
    body = job_body(args)
    if args.count == 1:
        job = ctx.client.submit(body)
        ctx.emit(job, tables.job_detail(job))
        return 0
    return submit_batches(body, args.count, ctx)


def submit_batches(body: Mapping[str, Any], count: int, ctx: Context) -> int:
    bar = ProgressBar(count, ctx.err, enabled=ctx.progress or ctx.err.isatty())
    started = time.monotonic()
    accepted: list[dict[str, Any]] = []
    bar.update(0)
    try:
        while len(accepted) < count:
            size = min(BATCH_SIZE, count - len(accepted))
            reply = _submit_chunk([dict(body) for _ in range(size)], ctx)
            accepted.extend(reply.get("jobs") or [])
            bar.update(len(accepted))
    except ApiError as ex:
        if accepted:
            ex.message += f" ({len(accepted)} of {count} jobs were accepted before this)"
        raise
    finally:
        bar.finish()
    elapsed = time.monotonic() - started
    created = sum(1 for job in accepted if job.get("created"))
    human = (
        f"submitted {len(accepted)} {body['type']} jobs to queue {body.get('queue', 'default')}"
        f" ({created} created, {len(accepted) - created} already existed)"
        f" in {elapsed:.2f}s ({len(accepted) / max(elapsed, 1e-9):.0f} jobs/s)"
    )
    if accepted:
        human += f"\nfirst {accepted[0].get('id')}\nlast  {accepted[-1].get('id')}"
    ctx.emit({"jobs": accepted}, human)
    return 0


def _submit_chunk(jobs: list[dict[str, Any]], ctx: Context) -> dict[str, Any]:
    """One all-or-nothing batch; a full queue (429) is waited out for a bounded number of
    tries, as Retry-After asks."""
    for attempt in range(QUEUE_FULL_RETRIES + 1):
        try:
            return ctx.client.submit_batch(jobs)
        except ApiError as ex:
            if ex.code != "queue_full" or attempt == QUEUE_FULL_RETRIES:
                raise
            ctx.sleep(min(ex.retry_after_s or 1.0, QUEUE_FULL_PAUSE_MAX_S))
    raise AssertionError("unreachable")  # pragma: no cover


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    if args.wait is None or args.wait <= 0:
        job = ctx.client.get_job(args.id)
    else:
        job = wait_for_job(ctx.client, args.id, args.wait, ctx.sleep)
    ctx.emit(job, tables.job_detail(job))
    return 0


def wait_for_job(
    client: Client,
    job_id: str,
    wait_s: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Long-polls in steps the API accepts (<= 60 s) until the job is terminal or wait_s
    passes."""
    deadline = clock() + wait_s
    # Each round either waits its whole step or pauses EARLY_ANSWER_PAUSE_S.
    rounds = math.ceil(wait_s / EARLY_ANSWER_PAUSE_S) + 1
    job = client.get_job(job_id, min(wait_s, MAX_SERVER_WAIT_S))
    for _ in range(rounds):
        left = deadline - clock()
        if job.get("status") in TERMINAL or left <= 0:
            break
        step = min(left, MAX_SERVER_WAIT_S)
        asked_at = clock()
        job = client.get_job(job_id, step)
        if job.get("status") not in TERMINAL and clock() - asked_at < step - 1:
            sleep(min(EARLY_ANSWER_PAUSE_S, max(deadline - clock(), 0)))
    return job


def list_pages(
    client: Client,
    limit: int,
    *,
    status: str | None = None,
    queue: str | None = None,
    job_type: str | None = None,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` jobs over as many pages as needed; returns them and the next cursor."""
    jobs: list[dict[str, Any]] = []
    for _ in range(math.ceil(limit / PAGE_SIZE)):
        page = client.list_jobs(
            status=status,
            queue=queue,
            job_type=job_type,
            limit=min(limit - len(jobs), PAGE_SIZE),
            cursor=cursor,
        )
        got = page.get("jobs") or []
        jobs.extend(got)
        cursor = page.get("next_cursor")
        if not cursor or not got or len(jobs) >= limit:
            break
    return jobs, cursor


def cmd_jobs(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit > MAX_LIST:
        raise UsageError(f"--limit: at most {MAX_LIST}")
    jobs, cursor = list_pages(
        ctx.client,
        args.limit,
        status=args.status,
        queue=args.queue,
        job_type=args.type,
        cursor=args.cursor,
    )
    human = tables.jobs_table(jobs)
    if cursor:
        human += f"\nmore: --cursor {cursor}"
    ctx.emit({"jobs": jobs, "next_cursor": cursor}, human)
    return 0


def cmd_queues(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client.queues()
    ctx.emit(reply, tables.queues_table(reply.get("queues") or []))
    return 0


def cmd_queue_delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.delete_queue(args.queue)
    ctx.emit({"queue": args.queue, "deleted": True}, f"deleted queue {args.queue}")
    return 0


def cmd_workers(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client.workers()
    ctx.emit(reply, tables.workers_table(reply.get("workers") or []))
    return 0


def cmd_failed_list(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit > MAX_LIST:
        raise UsageError(f"--limit: at most {MAX_LIST}")
    jobs, cursor = list_pages(ctx.client, args.limit, status="failed", queue=args.queue)
    ctx.emit({"jobs": jobs, "next_cursor": cursor}, tables.failed_table(jobs))
    return 0


def cmd_failed_retry(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client.retry_failed(args.queue)
    ctx.emit(reply, f"retried {reply.get('retried')} failed jobs of queue {args.queue}")
    return 0


def cmd_failed_purge(args: argparse.Namespace, ctx: Context) -> int:
    if not args.yes:
        if not ctx.stdin.isatty():
            raise UsageError("failed purge deletes jobs; add --yes to confirm")
        failed = ctx.client.queue(args.queue).get("failed")
        ctx.err.write(f"delete {failed} failed jobs of queue {args.queue}? [y/N] ")
        ctx.err.flush()
        if ctx.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.err.write("nothing deleted\n")
            return 1
    reply = ctx.client.purge_failed(args.queue)
    ctx.emit(reply, f"purged {reply.get('purged')} failed jobs of queue {args.queue}")
    return 0


def cmd_pause(args: argparse.Namespace, ctx: Context) -> int:
    queue = ctx.client.pause(args.queue)
    ctx.emit(queue, tables.queues_table([queue]))
    return 0


def cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    queue = ctx.client.resume(args.queue)
    ctx.emit(queue, tables.queues_table([queue]))
    return 0
