"""The `workstream` command line: argument parsing and one function per subcommand.

Each command takes the parsed arguments and a Context (client, streams, output mode) and
returns the exit status; API failures surface as workstream.client errors and are turned into
exit codes by __main__."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import Any, NoReturn, TextIO

from workstream.cli import tables
from workstream.cli.progress import ProgressBar
from workstream.client import Client, ClientError, JobRequest, QueueFull, RetryPolicy
from workstream.client.calls import DEFAULT_URL, MAX_BATCH, MAX_PAGE
from workstream.client.errors import ApiError, TransportError
from workstream.client.models import Job
from workstream.common.durations import parse_duration

# Exit statuses (documented in the README and `workstream --help`; scripts rely on them).
EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2  # also: a destructive command refused without --yes and without a terminal
EXIT_UNREACHABLE = 3
EXIT_JOB_FAILED = 4
EXIT_JOB_CANCELLED = 5
EXIT_JOB_UNFINISHED = (
    6  # --wait ran out with the job still waiting, scheduled, pending or processing
)
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit status:
  0    success; with --wait: the job completed
  1    the API answered with an error (printed as `error: <code>: <message>`), or a
       confirmation was declined, or `health` found Redis unavailable
  2    usage error, or a destructive command without --yes and without a terminal
  3    the API could not be reached
  4    with --wait: the job failed
  5    with --wait: the job was cancelled
  6    with --wait: the job was still unfinished when the wait ended
  130  interrupted (Ctrl-C), except `top`, which Ctrl-C ends normally (0)
"""

MAX_LIST = 100_000
MAX_COUNT = 10_000_000
DEFAULT_WAIT_S = 30.0
QUEUE_FULL_RETRIES = 30
QUEUE_FULL_PAUSE_MAX_S = 10.0
DEFAULT_TOP_INTERVAL_S = 2.0
STATUSES = ("scheduled", "pending", "processing", "completed", "failed", "cancelled")
# Fewer, shorter retries than the library's default: a person or a script is waiting.
CLI_RETRY = RetryPolicy(attempts=3, backoff=0.25, max_pause=5.0)
CLEAR_SCREEN = "\x1b[H\x1b[2J"
# The API's unique.until values (common.jobs.UNIQUE_UNTIL; a unit test keeps them equal, and the
# CLI stays clear of the server's modules).
UNIQUE_UNTIL = ("finished", "started", "ttl")

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
                self._client = Client(self.api_url, token=self.token, retry_policy=CLI_RETRY)
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

    def confirm(self, yes: bool, question: str, refusal: str) -> bool:
        """True to go ahead: --yes, or "y" typed at the terminal. Without a terminal nobody
        can answer, so the command refuses (exit 2) rather than guess."""
        if yes:
            return True
        if not self.stdin.isatty():
            raise UsageError(f"{refusal}; stdin is not a terminal, add --yes to confirm")
        self.err.write(f"{question} [y/N] ")
        self.err.flush()
        if self.stdin.readline().strip().lower() in ("y", "yes"):
            return True
        self.err.write("nothing deleted\n")
        return False


def context_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Context:
    token = getattr(args, "token", None)
    if token is None:
        # API_TOKEN may list several accepted tokens (the server's format); any one works.
        token = next((t.strip() for t in environ.get("API_TOKEN", "").split(",") if t.strip()), "")
    return Context(
        api_url=getattr(args, "api_url", None) or environ.get("API_URL") or DEFAULT_URL,
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


def priority_level(raw: str) -> int:
    """A job priority: an integer from 0 to 9 (higher first within its queue)."""
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 9, got {raw!r}")
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


def positive_seconds(raw: str) -> float:
    value = seconds(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {raw!r}")
    return value


def zoned_time(raw: str) -> str:
    """RFC 3339 with its zone (`2026-12-03T15:00:00Z`, `...+01:00`): a time without one would
    mean a different instant depending on where it is read."""
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time such as 2026-12-03T15:00:00Z, got {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"give the zone, e.g. {text}Z for UTC or {text}+01:00, got {raw!r}"
        )
    return text


def port(raw: str) -> int:
    value = positive_int(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {raw!r}")
    return value


def version() -> str:
    try:
        return metadata.version("workstream")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


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
        help=f"API base URL (env API_URL, default {DEFAULT_URL})",
    )
    group.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (env API_TOKEN)")
    group.add_argument(
        "--progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show progress bars even when stderr is not a terminal",
    )
    return options


Action = Callable[..., Parser]


def action_adder(
    group: Parser, dest: str, common: Parser, *, target: tuple[str, str] | None = None,
    required: bool = False,
) -> Action:  # fmt: skip
    """`action(name, handler, help_text, takes_target=True)` for a command group's actions:
    each a sub-command sharing `common`'s options, its help as its description, its handler
    set, and, when `target` is (name, METAVAR) and it takes one, that positional argument."""
    actions = group.add_subparsers(dest=dest, metavar="ACTION", required=required)

    def action(name: str, handler: Handler, help_text: str, takes_target: bool = True) -> Parser:
        sub: Parser = actions.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        sub.set_defaults(handler=handler)
        if target is not None and takes_target:
            sub.add_argument(target[0], metavar=target[1])
        return sub

    return action


def _wait_option(parser: Parser, what: str) -> None:
    parser.add_argument(
        "--wait",
        type=seconds,
        nargs="?",
        const=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"{what}, at most SECONDS (default {DEFAULT_WAIT_S:g}); the exit status then "
        "tells the outcome: 0 completed, 4 failed, 5 cancelled, 6 still unfinished",
    )


def _yes_option(parser: Parser) -> None:
    parser.add_argument(
        "--yes", action="store_true", help="do not ask (required when stdin is not a terminal)"
    )


def build_parser() -> Parser:
    common = _global_options()
    parser = Parser(
        prog="workstream",
        description="Operate a WorkStream job queue through its REST API. "
        "Times are shown in UTC, marked as such.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"workstream {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str, **extra: Any) -> Parser:
        sub: Parser = commands.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **extra,
        )
        sub.set_defaults(handler=handler)
        return sub

    dev = command("dev", cmd_dev, "run Redis, the API and workers in the foreground")
    dev.add_argument("--workers", type=nonnegative_int, default=2, help="worker processes (2)")
    dev.add_argument("--port", type=port, help="API port (env PORT, default 8080)")

    _submit_parser(command("submit", cmd_submit, "submit a job, or --count copies of it"))

    status = command("status", cmd_status, "show one job and its attempts", aliases=["show"])
    status.add_argument("id", metavar="ID")
    _wait_option(status, "wait until the job finishes")

    for name, handler, help_text in (
        ("cancel", cmd_cancel, "cancel a pending or scheduled job; ask a running one to stop"),
        ("retry", cmd_retry, "run a failed job again (attempts start over)"),
    ):
        action = command(name, handler, help_text)
        action.add_argument("id", metavar="ID")
    delete = command("delete", cmd_delete, "delete a finished job's record")
    delete.add_argument("id", metavar="ID")
    _yes_option(delete)

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
    _yes_option(delete_queue)
    command("workers", cmd_workers, "show the live workers and the job types they handle")
    command("health", cmd_health, "check the API and its Redis (exit 0 ok, 1 degraded)")

    top = command("top", cmd_top, "a live view of queues and workers, redrawn until Ctrl-C")
    top.add_argument(
        "--interval",
        type=positive_seconds,
        default=DEFAULT_TOP_INTERVAL_S,
        metavar="S",
        help=f"seconds between refreshes (default {DEFAULT_TOP_INTERVAL_S:g})",
    )
    top.add_argument(
        "--iterations",
        type=positive_int,
        metavar="N",
        help="stop after N refreshes (default: until Ctrl-C on a terminal, else 1)",
    )

    failed = command("failed", cmd_failed_list, "list, retry or purge failed jobs")
    failed_action = action_adder(failed, "failed_command", common, required=True)
    failed_list = failed_action("list", cmd_failed_list, "list failed jobs")
    failed_list.add_argument("--queue", metavar="Q")
    failed_list.add_argument("--limit", type=positive_int, default=50, metavar="N")
    failed_retry = failed_action("retry", cmd_failed_retry, "requeue a queue's failed jobs")
    failed_retry.add_argument("--queue", metavar="Q", required=True)
    failed_purge = failed_action("purge", cmd_failed_purge, "delete a queue's failed jobs")
    failed_purge.add_argument("--queue", metavar="Q", required=True)
    _yes_option(failed_purge)

    pause = command("pause", cmd_pause, "stop workers taking jobs from a queue")
    pause.add_argument("queue", metavar="QUEUE")
    resume = command("resume", cmd_resume, "let workers take jobs from a queue again")
    resume.add_argument("queue", metavar="QUEUE")
    # Imported here: cli/schedules.py builds on this module's Context and option types.
    from workstream.cli import schedules

    schedules.add_parser(command, common)
    from workstream.cli import limits

    limits.add_parser(command, common)
    from workstream.cli import batches

    batches.add_parser(command, common)
    from workstream.cli import events

    events.add_parser(command, common)
    return parser


def _submit_parser(submit: Parser) -> None:
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
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--delay", type=seconds, metavar="S", help="run after S seconds")
    when.add_argument(
        "--run-at",
        type=zoned_time,
        metavar="TIME",
        help="run at an RFC 3339 time with its zone, e.g. 2026-12-03T15:00:00Z",
    )
    submit.add_argument(
        "--max-attempts", type=positive_int, metavar="N", help="attempts before the job fails"
    )
    submit.add_argument(
        "--timeout", type=positive_seconds, metavar="S", help="seconds one attempt may run"
    )
    submit.add_argument(
        "--priority",
        type=priority_level,
        metavar="0-9",
        help="higher first within the queue, first in first out within a level (default 0)",
    )
    submit.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="submitting the same KEY again returns the first job instead of a new one "
        "(without it the CLI makes one up, so its own retries never submit twice)",
    )
    _unique_and_expiry_options(submit)
    _dependency_options(submit)
    submit.add_argument(
        "--callback-url",
        metavar="URL",
        help="when the job ends, POST its final record (JSON, as `workstream status --json`) "
        "to URL; retried like an http job",
    )
    _wait_option(submit, "after submitting one job, wait until it finishes")


def duration(raw: str) -> str:
    """Seconds or a duration such as 500ms, 10s, 10m, 1h, 2d (as the API reads it); passed on
    as given, so the API's own bounds and messages apply."""
    try:
        if parse_duration(raw).total_seconds() <= 0:
            raise ValueError(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration > 0 such as 90, 10s, 10m or 1h, got {raw!r}"
        ) from None
    return raw.strip()


def _dependency_options(submit: Parser) -> None:
    """--id, --depends-on and --on-parent-failure, onto the API's own fields (README:
    Dependencies)."""
    submit.add_argument(
        "--id",
        metavar="ID",
        help="your own job id: the same submission again returns the job, another one under "
        "the ID is refused (409 id_conflict: exit 1)",
    )
    submit.add_argument(
        "--depends-on",
        metavar="ID[,ID...]",
        action="append",
        help="the job waits (status waiting) until each of these jobs has completed "
        "(repeat or comma-separate)",
    )
    submit.add_argument(
        "--on-parent-failure",
        choices=("cancel", "run"),
        help="when a parent fails or is cancelled: cancel this job (the default) or run it once "
        "every parent has ended",
    )


def depends_on(args: argparse.Namespace) -> list[str] | None:
    given = getattr(args, "depends_on", None)
    if not given:
        return None
    return [part.strip() for item in given for part in item.split(",") if part.strip()]


def _unique_and_expiry_options(submit: Parser) -> None:
    """--unique KEY / --unique-payload (+ --unique-ttl, --unique-until) and --expires-in /
    --expires-at, onto the API's `unique` and `expires_*` options (README: Idempotency, unique
    jobs and expiry)."""
    unique = submit.add_mutually_exclusive_group()
    unique.add_argument(
        "--unique",
        metavar="KEY",
        help="refuse this job while a live job holds KEY (409 duplicate_job: exit 1, the error "
        "names the holder)",
    )
    unique.add_argument(
        "--unique-payload",
        action="store_true",
        help="the same, keyed on a hash of the job's type, queue and payload",
    )
    submit.add_argument(
        "--unique-ttl",
        type=duration,
        metavar="DURATION",
        help="how long the unique lock lasts at most (API default 1h)",
    )
    submit.add_argument(
        "--unique-until",
        choices=UNIQUE_UNTIL,
        help="when the holder lets go of the key: once it starts, once it finishes (the API "
        "default), or only when the ttl runs out",
    )
    expiry = submit.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in",
        type=duration,
        metavar="DURATION",
        help="cancel the job (error expired) if it has not started this long after submission",
    )
    expiry.add_argument(
        "--expires-at",
        type=zoned_time,
        metavar="TIME",
        help="the same by an RFC 3339 time with its zone, e.g. 2026-12-03T18:00:00Z",
    )


def unique_option(args: argparse.Namespace) -> dict[str, Any] | None:
    """The API's `unique` object from the --unique* flags; None when none was given."""
    if args.unique is None and not args.unique_payload:
        if args.unique_ttl is not None or args.unique_until is not None:
            raise UsageError("--unique-ttl and --unique-until go with --unique or --unique-payload")
        return None
    option: dict[str, Any] = {} if args.unique is None else {"key": args.unique}
    if args.unique_ttl is not None:
        option["ttl"] = args.unique_ttl
    if args.unique_until is not None:
        option["until"] = args.unique_until
    return option


# -- commands --------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, ctx: Context) -> int:
    from workstream.cli.dev import run_dev  # only `dev` needs the process machinery

    return run_dev(workers=args.workers, port=args.port, environ=ctx.environ, out=ctx.out)


def job_request(args: argparse.Namespace) -> JobRequest:
    return JobRequest(
        type=args.type,
        payload=args.payload,
        queue=args.queue,
        max_attempts=args.max_attempts,
        timeout=args.timeout,
        delay=args.delay,
        run_at=args.run_at,
        idempotency_key=args.idempotency_key,
        unique=unique_option(args),
        expires_at=args.expires_at,
        expires_in=args.expires_in,
        priority=args.priority,
        id=getattr(args, "id", None),
        depends_on=depends_on(args),
        on_parent_failure=getattr(args, "on_parent_failure", None),
        callback_url=getattr(args, "callback_url", None),
    )


def cmd_submit(args: argparse.Namespace, ctx: Context) -> int:
    if args.count > MAX_COUNT:
        raise UsageError(f"--count: at most {MAX_COUNT}")
    if args.count > 1 and args.idempotency_key is not None:
        raise UsageError("--idempotency-key names one job; it cannot go with --count")
    if args.count > 1 and args.id is not None:
        raise UsageError("--id names one job; it cannot go with --count")
    if args.count > 1 and args.wait is not None:
        raise UsageError("--wait follows one job; it cannot go with --count")
    if args.count > 1 and (args.unique is not None or args.unique_payload):
        raise UsageError(
            "--unique makes copies duplicates of each other; it cannot go with --count"
        )
    request = job_request(args)
    if args.count > 1:
        return submit_batches(request, args.count, ctx)
    job = ctx.client.submit(
        request.type,
        request.payload,
        queue=request.queue,
        max_attempts=request.max_attempts,
        timeout=request.timeout,
        delay=request.delay,
        run_at=request.run_at,
        idempotency_key=request.idempotency_key,
        unique=request.unique,
        expires_at=request.expires_at,
        expires_in=request.expires_in,
        priority=request.priority,
        id=request.id,
        depends_on=request.depends_on,
        on_parent_failure=request.on_parent_failure,
        callback_url=request.callback_url,
    )
    if args.wait is None:
        ctx.emit(dict(job.raw), tables.job_detail(job.raw))
        return EXIT_OK
    return show_waited(ctx, job.id, args.wait)


def submit_batches(request: JobRequest, count: int, ctx: Context) -> int:
    bar = ProgressBar(count, ctx.err, enabled=ctx.progress or ctx.err.isatty())
    started = time.monotonic()
    accepted: list[dict[str, Any]] = []
    bar.update(0)
    try:
        while len(accepted) < count:
            size = min(MAX_BATCH, count - len(accepted))
            accepted.extend(_submit_chunk([request] * size, ctx))
            bar.update(len(accepted))
    except (ApiError, TransportError) as ex:
        if accepted:
            note = f" ({len(accepted)} of {count} jobs were accepted before this)"
            if isinstance(ex, ApiError):
                ex.message += note
            else:
                ex.reason += note
                ex.args = (f"cannot reach API at {ex.url}: {ex.reason}",)
        raise
    finally:
        bar.finish()
    elapsed = time.monotonic() - started
    created = sum(1 for job in accepted if job.get("created"))
    human = (
        f"submitted {len(accepted)} {request.type} jobs to queue {request.queue or 'default'}"
        f" ({created} created, {len(accepted) - created} already existed)"
        f" in {elapsed:.2f}s ({len(accepted) / max(elapsed, 1e-9):.0f} jobs/s)"
    )
    if accepted:
        human += f"\nfirst {accepted[0].get('id')}\nlast  {accepted[-1].get('id')}"
    ctx.emit({"jobs": accepted}, human)
    return EXIT_OK


def _submit_chunk(jobs: list[JobRequest], ctx: Context) -> list[dict[str, Any]]:
    """One all-or-nothing batch; a full queue (429) is waited out for a bounded number of
    tries, as Retry-After asks. Each job gets an idempotency key (made up by the client), so
    the client's own retries of a batch cannot create a job twice."""
    for attempt in range(QUEUE_FULL_RETRIES + 1):
        try:
            answer = ctx.client.submit_many(jobs)
            return [{"id": s.id, "status": s.status, "created": s.created} for s in answer]
        except QueueFull as ex:
            if attempt == QUEUE_FULL_RETRIES:
                raise
            ctx.sleep(min(ex.retry_after or 1.0, QUEUE_FULL_PAUSE_MAX_S))
    raise AssertionError("unreachable")  # pragma: no cover


def wait_exit_code(job: Job) -> int:
    if job.status == "completed":
        return EXIT_OK
    if job.status == "failed":
        return EXIT_JOB_FAILED
    if job.status == "cancelled":
        return EXIT_JOB_CANCELLED
    return EXIT_JOB_UNFINISHED


def show_waited(ctx: Context, job_id: str, wait_s: float) -> int:
    job = ctx.client.wait(job_id, timeout=wait_s)
    ctx.emit(dict(job.raw), tables.job_detail(job.raw))
    code = wait_exit_code(job)
    if code == EXIT_JOB_UNFINISHED:
        ctx.err.write(f"job {job.id} is still {job.status} after waiting {wait_s:g}s\n")
    return code


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    if args.wait is not None:
        return show_waited(ctx, args.id, args.wait)
    job = ctx.client.get(args.id)
    ctx.emit(dict(job.raw), tables.job_detail(job.raw))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    job = ctx.client.cancel(args.id)
    if job.status == "processing" or job.cancel_requested:
        # 202: the handler is asked to stop; the job ends cancelled once it does.
        ctx.emit(dict(job.raw), f"asked job {job.id} to stop (it is running)")
    else:
        ctx.emit(dict(job.raw), f"cancelled job {job.id}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, ctx: Context) -> int:
    job = ctx.client.retry(args.id)
    ctx.emit(dict(job.raw), f"retried job {job.id}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    if not ctx.confirm(args.yes, f"delete job {args.id}?", f"delete removes job {args.id}"):
        return EXIT_API_ERROR
    ctx.client.delete(args.id)
    ctx.emit({"id": args.id, "deleted": True}, f"deleted job {args.id}")
    return EXIT_OK


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
    for _ in range(math.ceil(limit / MAX_PAGE)):
        page = client.list_jobs(
            status=status,
            queue=queue,
            type=job_type,
            limit=min(limit - len(jobs), MAX_PAGE),
            cursor=cursor,
        )
        jobs.extend(dict(job.raw) for job in page.jobs)
        cursor = page.next_cursor
        if not cursor or not page.jobs or len(jobs) >= limit:
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
    return EXIT_OK


def cmd_queues(args: argparse.Namespace, ctx: Context) -> int:
    queues = [dict(queue.raw) for queue in ctx.client.queues()]
    ctx.emit({"queues": queues}, tables.queues_table(queues))
    return EXIT_OK


def cmd_queue_delete(args: argparse.Namespace, ctx: Context) -> int:
    question = f"forget queue {args.queue}?"
    if not ctx.confirm(args.yes, question, f"queues delete forgets queue {args.queue}"):
        return EXIT_API_ERROR
    ctx.client.delete_queue(args.queue)
    ctx.emit({"queue": args.queue, "deleted": True}, f"deleted queue {args.queue}")
    return EXIT_OK


def cmd_workers(args: argparse.Namespace, ctx: Context) -> int:
    workers = [dict(worker.raw) for worker in ctx.client.workers()]
    ctx.emit({"workers": workers}, tables.workers_table(workers))
    return EXIT_OK


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    health = ctx.client.health()
    human = tables.render_record(
        [("api", "ok"), ("status", health.status), ("redis", health.redis)]
    )
    ctx.emit(dict(health.raw), human)
    return EXIT_OK if health.ok else EXIT_API_ERROR


def cmd_top(args: argparse.Namespace, ctx: Context) -> int:
    """Redraws queues and workers every --interval seconds: in place on a terminal, one frame
    after another otherwise (one JSON object per line with --json). A failed refresh is shown
    in the frame and the view goes on; the exit status is that of the last refresh."""
    live = ctx.out.isatty()
    iterations = args.iterations or (None if live else 1)
    frame = 0
    failure: ClientError | None = None
    try:
        while iterations is None or frame < iterations:
            if frame:
                ctx.sleep(args.interval)
            frame += 1
            try:
                queues = [dict(q.raw) for q in ctx.client.queues()]
                workers = [dict(w.raw) for w in ctx.client.workers()]
                failure = None
                text = tables.top_frame(ctx.api_url, queues, workers)
                data: dict[str, Any] = {"queues": queues, "workers": workers}
            except ClientError as ex:
                failure = ex
                text = f"{ctx.api_url}  {tables.now_utc()}\nerror: {ex}"
                data = {"error": str(ex)}
            if live and not ctx.json:
                ctx.out.write(CLEAR_SCREEN)
            elif frame > 1 and not ctx.json:
                ctx.out.write("\n")
            ctx.emit({"at": tables.now_utc(), **data}, text)
            ctx.out.flush()
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how a live view ends
    if failure is not None:
        raise failure
    return EXIT_OK


def cmd_failed_list(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit > MAX_LIST:
        raise UsageError(f"--limit: at most {MAX_LIST}")
    jobs, cursor = list_pages(ctx.client, args.limit, status="failed", queue=args.queue)
    ctx.emit({"jobs": jobs, "next_cursor": cursor}, tables.failed_table(jobs))
    return EXIT_OK


def cmd_failed_retry(args: argparse.Namespace, ctx: Context) -> int:
    retried = ctx.client.retry_failed(args.queue)
    ctx.emit(
        {"queue": args.queue, "retried": retried},
        f"retried {retried} failed jobs of queue {args.queue}",
    )
    return EXIT_OK


def cmd_failed_purge(args: argparse.Namespace, ctx: Context) -> int:
    refusal = f"failed purge deletes the failed jobs of queue {args.queue}"
    if not args.yes and ctx.stdin.isatty():
        failed = ctx.client.queue(args.queue).failed
        question = f"delete {failed} failed jobs of queue {args.queue}?"
    else:
        question = ""
    if not ctx.confirm(args.yes, question, refusal):
        return EXIT_API_ERROR
    purged = ctx.client.purge_failed(args.queue)
    ctx.emit(
        {"queue": args.queue, "purged": purged},
        f"purged {purged} failed jobs of queue {args.queue}",
    )
    return EXIT_OK


def cmd_pause(args: argparse.Namespace, ctx: Context) -> int:
    queue = ctx.client.pause(args.queue)
    ctx.emit(dict(queue.raw), tables.queues_table([queue.raw]))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    queue = ctx.client.resume(args.queue)
    ctx.emit(dict(queue.raw), tables.queues_table([queue.raw]))
    return EXIT_OK
