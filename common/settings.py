"""One typed, frozen settings object built from the environment, validated once at start-up."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from workstream.common.durations import parse_duration
from workstream.common.errors import SettingsError
from workstream.common.redis_conn import (
    is_cluster_url,
    is_sentinel_url,
    parse_cluster_url,
    parse_sentinel_url,
)
from workstream.common.ssrf import IPNetwork, parse_networks

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
ROUTINE_LEVELS = ("debug", "info")
DURABILITY_LEVELS = ("local", "replicated")
TOKEN_SCOPES = ("produce", "work", "read", "admin")  # api.scopes.Scope names the same four


@dataclass(frozen=True)
class SettingDoc:
    name: str
    default: str
    meaning: str


SETTING_DOCS: tuple[SettingDoc, ...] = (
    SettingDoc(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis to use (`rediss://` for TLS; `redis+sentinel://host:26379,host2:26379/<master>/<db>`"
        " finds the primary through Sentinel).",
    ),
    SettingDoc("HOST", "127.0.0.1", "Address the API listens on."),
    SettingDoc("PORT", "8080", "Port the API listens on."),
    SettingDoc("WORKER_COUNT", "10", "Job slots (threads) per worker process."),
    SettingDoc(
        "WORKER_PROCESSES",
        "1",
        "Worker processes under one supervising parent (like API_PROCESSES); "
        "each has WORKER_COUNT slots and its own worker id.",
    ),
    SettingDoc(
        "QUEUES",
        "default",
        "Queues a worker serves, comma-separated: in strict order, highest first (a busy "
        "first queue starves the rest), or each with a weight (critical:6,default:3,low:1): "
        "each claim then orders them by weighted random choice, so every queue gets about its "
        "share.",
    ),
    SettingDoc("JOB_QUEUE_CAPACITY", "100000", "Pending + scheduled jobs per queue before 429."),
    SettingDoc("MAX_ATTEMPTS", "3", "Default attempts per job before it is dead-lettered."),
    SettingDoc("RETRY_BACKOFF", "1s", "Base retry delay; doubles per attempt, full jitter."),
    SettingDoc("RETRY_BACKOFF_MAX", "10m", "Cap on the retry delay."),
    SettingDoc("JOB_TIMEOUT", "300s", "Default per-job run time limit."),
    SettingDoc("SHUTDOWN_GRACE", "25s", "Time running jobs get to finish after SIGTERM."),
    SettingDoc("NAMESPACE", "default", "Key namespace; keys are `ws:{NAMESPACE}:...`."),
    SettingDoc("WORKER_TTL", "30s", "A worker silent this long is dead and its jobs recovered."),
    SettingDoc("SWEEPER_INTERVAL", "10s", "How often the sweeper looks for dead workers."),
    SettingDoc("RESULT_TTL", "24h", "How long completed and cancelled jobs are kept."),
    SettingDoc("MAX_PAYLOAD_BYTES", "1048576", "Largest accepted request body."),
    SettingDoc("WORKER_HANDLERS", "", "Modules to import for handlers, comma-separated."),
    SettingDoc("LOG_LEVEL", "info", "debug, info, warning or error."),
    SettingDoc(
        "LOG_FORMAT",
        "",
        "text or json; empty: text when stderr is a terminal, else json (same fields in both).",
    ),
    SettingDoc(
        "LOG_ROUTINE",
        "info",
        "Level of the per-request (http.request) and per-job (job.completed) lines: info or "
        "debug (`workstream dev` sets debug).",
    ),
    SettingDoc("API_TOKEN", "", "Bearer tokens (comma-separated); empty disables auth."),
    SettingDoc(
        "API_TOKENS",
        "",
        "Scoped bearer tokens, comma-separated `scope:token` (scopes: produce, work, read, "
        "admin; a token may be listed with several); API_TOKEN tokens hold every scope.",
    ),
    SettingDoc("API_THREADS", "256", "API request threads (long-polls hold one each)."),
    SettingDoc("API_PROCESSES", "1", "API processes sharing the port (pre-fork, SO_REUSEPORT)."),
    SettingDoc("IDEMPOTENCY_TTL", "24h", "How long an idempotency key maps to its job."),
    SettingDoc("DEAD_LETTER_MAX", "10000", "Failed jobs kept per queue; the oldest go first."),
    SettingDoc(
        "MAX_QUEUES",
        "1000",
        "Queue names in use before a job for a new queue answers 409 too_many_queues "
        "(configured QUEUES always accepted; an empty queue can be deleted).",
    ),
    SettingDoc(
        "MAX_TYPES",
        "1000",
        "Job types in use, counted per queue, before a job of a new type answers 409 "
        "too_many_types (counters are kept per queue and type).",
    ),
    SettingDoc(
        "MAX_SCHEDULES",
        "1000",
        "Schedules kept before a PUT of a new one answers 409 too_many_schedules.",
    ),
    SettingDoc(
        "HTTP_JOB_ALLOWED_NETWORKS",
        "",
        "CIDRs (comma-separated) that `http` jobs may reach although they are loopback, private, "
        "link-local or reserved; empty: only public addresses.",
    ),
    SettingDoc(
        "WEBHOOK_SECRET",
        "",
        "When set, `http` jobs sign each request (WorkStream-Signature, HMAC-SHA256).",
    ),
    SettingDoc(
        "HTTP_JOB_MAX_RESPONSE_BYTES",
        "65536",
        "Response body an `http` job keeps in its result; the rest is cut (truncated: true).",
    ),
)
SETTING_DOCS += (
    SettingDoc(
        "DURABILITY",
        "local",
        "local: a write is acknowledged once the primary has it; replicated: once REPLICA_ACKS "
        "replicas have it too (WAIT), else 503 not_replicated.",
    ),
    SettingDoc("REPLICA_ACKS", "1", "Replicas that must confirm a write (DURABILITY=replicated)."),
    SettingDoc(
        "REPLICA_ACK_TIMEOUT", "500ms", "How long a write waits for REPLICA_ACKS confirmations."
    ),
)
SETTING_DOCS += (
    SettingDoc(
        "EVENTS_MAX",
        "100000",
        "Entries kept in the job event stream (GET /events), trimmed approximately (up to one "
        "stream node, 100 entries, more); 0 turns the stream off. Kept in Redis: the last "
        "process started sets it for all.",
    ),
    SettingDoc(
        "EVENTS_STREAMS",
        "32",
        "Concurrent GET /events responses per API process (each holds a request thread, "
        "taken from the long-polls' share; at most half of API_THREADS - 16); the next "
        "answers 503 too_many_streams.",
    ),
    SettingDoc(
        "EVENTS_HOLD",
        "15s",
        "How long a GET /events response waits for a matching event before it ends with a "
        "heartbeat; a response ends once it sent what there was (clients resume with "
        "Last-Event-ID).",
    ),
)
SETTING_DOCS += (
    SettingDoc(
        "CALLBACK_MAX_ATTEMPTS",
        "20",
        "Attempts a job's callback (the `http` job POSTing its record to callback_url) gets "
        "before it is dead-lettered; with the default backoff, retries span up to about 1.8 hours "
        "(half that on average: full jitter).",
    ),
    SettingDoc(
        "CALLBACK_TIMEOUT",
        "10s",
        "Time a callback's POST may take (at most 300s), per attempt.",
    ),
    SettingDoc(
        "RETRY_AFTER_MAX",
        "1h",
        "Longest delay a failed attempt may ask for its next (a 429/503's Retry-After in an "
        "`http` job, RetryLater in a handler) instead of the backoff; a longer one waits this "
        "long.",
    ),
)
SETTING_DOCS += (
    SettingDoc(
        "QUEUE_SHARDS",
        "",
        "queue:shard pairs (comma-separated) placing queues in shard groups, each with its own "
        "hash tag (a Redis Cluster spreads them over its masters); unlisted queues stay in the "
        "default shard. A worker process serves queues of one shard.",
    ),
)
_DEFAULTS = {doc.name: doc.default for doc in SETTING_DOCS}


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(repr=False)
    host: str
    port: int
    worker_count: int
    worker_processes: int
    queues: tuple[str, ...]
    job_queue_capacity: int
    max_attempts: int
    retry_backoff: timedelta
    retry_backoff_max: timedelta
    job_timeout: timedelta
    shutdown_grace: timedelta
    namespace: str
    worker_ttl: timedelta
    sweeper_interval: timedelta
    result_ttl: timedelta
    max_payload_bytes: int
    worker_handlers: tuple[str, ...]
    log_level: str
    log_format: str  # "text", "json" or "" (decided by whether stderr is a terminal)
    log_routine: str
    api_tokens: tuple[str, ...] = field(repr=False)
    api_scoped_tokens: tuple[tuple[str, str], ...] = field(repr=False)  # (scope, token) pairs
    api_threads: int
    api_processes: int
    idempotency_ttl: timedelta
    dead_letter_max: int
    max_queues: int
    max_types: int
    max_schedules: int
    http_job_allowed_networks: tuple[IPNetwork, ...] = ()
    webhook_secret: str = field(default="", repr=False)
    http_job_max_response_bytes: int = 65536

    durability: str = "local"
    replica_acks: int = 1
    replica_ack_timeout: timedelta = timedelta(milliseconds=500)
    events_max: int = 100_000
    events_streams: int = 32
    events_hold: timedelta = timedelta(seconds=15)
    callback_max_attempts: int = 20
    callback_timeout: timedelta = timedelta(seconds=10)
    retry_after_max: timedelta = timedelta(hours=1)
    # QUEUES with weights (critical:6,default:3,low:1): one per queue, in order; () is strict
    # order. worker.fetcher orders the queues of each claim by weighted random choice.
    queue_weights: tuple[int, ...] = ()
    # (queue, shard) pairs from QUEUE_SHARDS; see common/shards.py.
    queue_shards: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Collects every problem and raises one SettingsError naming each variable."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            raw = env.get(name, _DEFAULTS[name])
            try:
                values[name.lower()] = parse(raw)
            except ValueError as ex:
                problems.append(f"{name}: {ex}")
        if not problems and values["retry_backoff_max"] < values["retry_backoff"]:
            problems.append("RETRY_BACKOFF_MAX: must not be below RETRY_BACKOFF")
        if problems:
            raise SettingsError("; ".join(problems))
        # API_TOKENS and API_TOKEN differ by one letter: name the scoped pairs apart.
        values["api_scoped_tokens"] = values.pop("api_tokens")
        values["api_tokens"] = values.pop("api_token")
        values["queue_weights"] = queue_weights(env.get("QUEUES", _DEFAULTS["QUEUES"]))
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Settings(**values)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def _nonnegative_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"expected a whole number (0 or more), got {raw!r}") from None
    if value < 0:
        raise ValueError(f"expected a whole number (0 or more), got {raw!r}")
    return value


def _duration_at_most(raw: str, most: timedelta) -> timedelta:
    value = _duration(raw)
    if value > most:
        raise ValueError(f"expected at most {most.total_seconds():g}s, got {raw!r}")
    return value


def _port(raw: str) -> int:
    value = _positive_int(raw)
    if value > 65535:
        raise ValueError(f"expected a port 1-65535, got {raw!r}")
    return value


def _duration(raw: str) -> timedelta:
    value = parse_duration(raw)
    if value <= timedelta(0):
        raise ValueError(f"expected a positive duration, got {raw!r}")
    return value


def _nonnegative_duration(raw: str) -> timedelta:
    return parse_duration(raw)


def _name(raw: str) -> str:
    value = raw.strip()
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"expected 1-64 characters of [A-Za-z0-9_.-], got {raw!r}")
    return value


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(name for name, _ in _weighted(raw))
    if len(set(names)) != len(names):
        raise ValueError(f"a queue is listed twice in {raw!r}")
    return names


QUEUE_WEIGHT_MAX = 1000


def _weighted(raw: str) -> list[tuple[str, int | None]]:
    """QUEUES entries: `name` (strict order) or `name:weight` (weighted); all one or the other."""
    entries: list[tuple[str, int | None]] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        name, colon, weight = part.partition(":")
        if not colon:
            entries.append((_name(name), None))
            continue
        if (
            not re.fullmatch(r"\s*[0-9]{1,4}\s*", weight)
            or not 1 <= int(weight) <= QUEUE_WEIGHT_MAX
        ):
            raise ValueError(
                f"expected a weight from 1 to {QUEUE_WEIGHT_MAX} after {name.strip()!r}:, "
                f"got {weight!r}"
            )
        entries.append((_name(name), int(weight)))
    if not entries:
        raise ValueError("expected at least one queue name")
    if len({weight is None for _, weight in entries}) > 1:
        raise ValueError(
            f"give every queue a weight (critical:6,default:3,low:1) or none (strict order), "
            f"got {raw!r}"
        )
    return entries


def queue_weights(raw: str) -> tuple[int, ...]:
    """The weight of each QUEUES entry, in order; () when none is weighted (strict order)."""
    return tuple(weight for _, weight in _weighted(raw) if weight is not None)


SHARD_PATTERN = re.compile(r"[a-z0-9_]{1,32}")


def _queue_shards(raw: str) -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        queue, colon, shard = part.strip().rpartition(":")
        if not colon or not NAME_PATTERN.fullmatch(queue.strip()):
            raise ValueError(f"expected queue:shard pairs, got {part.strip()!r}")
        if not SHARD_PATTERN.fullmatch(shard.strip()):
            raise ValueError(f"a shard name is 1-32 characters of [a-z0-9_], got {shard!r}")
        if queue.strip() in pairs:
            raise ValueError(f"queue {queue.strip()!r} is given a shard twice")
        pairs[queue.strip()] = shard.strip()
    return tuple(sorted(pairs.items()))


def _modules(raw: str) -> tuple[str, ...]:
    modules = tuple(part.strip() for part in raw.split(",") if part.strip())
    for module in modules:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", module):
            raise ValueError(f"expected dotted module paths, got {module!r}")
    return modules


def _log_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value and value not in LOG_FORMATS:
        raise ValueError(f"expected text or json (or empty: by terminal), got {raw!r}")
    return value


def _routine_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ROUTINE_LEVELS:
        raise ValueError(f"expected debug or info, got {raw!r}")
    return value


def _redis_url(raw: str) -> str:
    value = raw.strip()
    if is_sentinel_url(value):
        parse_sentinel_url(value)  # a bad one stops the process at start, not at first use
    elif is_cluster_url(value):
        parse_cluster_url(value)
    elif not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            "expected a redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
            "redis+cluster:// or rediss+cluster:// URL"
        )
    return value


def _durability(raw: str) -> str:
    value = raw.strip().lower()
    if value not in DURABILITY_LEVELS:
        raise ValueError(f"expected local or replicated, got {raw!r}")
    return value


def _tokens(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _scoped_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for index, part in enumerate(raw.split(","), start=1):
        if not part.strip():
            continue
        scope, colon, token = part.strip().partition(":")
        if not colon or scope not in TOKEN_SCOPES or not token.strip():
            # Never echo the entry: it may be a secret.
            raise ValueError(
                f"entry {index} is not scope:token with a scope among {', '.join(TOKEN_SCOPES)}"
            )
        pairs.append((scope, token.strip()))
    return tuple(pairs)


def _host(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("expected an address")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "REDIS_URL": _redis_url,
    "HOST": _host,
    "PORT": _port,
    "WORKER_COUNT": _positive_int,
    "WORKER_PROCESSES": _positive_int,
    "QUEUES": _names,
    "JOB_QUEUE_CAPACITY": _positive_int,
    "MAX_ATTEMPTS": _positive_int,
    "RETRY_BACKOFF": _nonnegative_duration,
    "RETRY_BACKOFF_MAX": _nonnegative_duration,
    "JOB_TIMEOUT": _duration,
    "SHUTDOWN_GRACE": _nonnegative_duration,
    "NAMESPACE": _name,
    "WORKER_TTL": _duration,
    "SWEEPER_INTERVAL": _duration,
    "RESULT_TTL": _duration,
    "MAX_PAYLOAD_BYTES": _positive_int,
    "WORKER_HANDLERS": _modules,
    "LOG_LEVEL": _log_level,
    "LOG_FORMAT": _log_format,
    "LOG_ROUTINE": _routine_level,
    "API_TOKEN": _tokens,
    "API_TOKENS": _scoped_tokens,
    "API_THREADS": _positive_int,
    "API_PROCESSES": _positive_int,
    "IDEMPOTENCY_TTL": _duration,
    "DEAD_LETTER_MAX": _positive_int,
    "MAX_QUEUES": _positive_int,
    "MAX_TYPES": _positive_int,
    "DURABILITY": _durability,
    "REPLICA_ACKS": _positive_int,
    "REPLICA_ACK_TIMEOUT": _duration,
    "MAX_SCHEDULES": _positive_int,
    "HTTP_JOB_ALLOWED_NETWORKS": parse_networks,
    "WEBHOOK_SECRET": str.strip,
    "HTTP_JOB_MAX_RESPONSE_BYTES": _positive_int,
    "EVENTS_MAX": _nonnegative_int,
    "EVENTS_STREAMS": _positive_int,
    "EVENTS_HOLD": _duration,
    "CALLBACK_MAX_ATTEMPTS": _positive_int,
    "CALLBACK_TIMEOUT": lambda raw: _duration_at_most(raw, timedelta(seconds=300)),
    "RETRY_AFTER_MAX": _duration,
    "QUEUE_SHARDS": _queue_shards,
}
assert set(_PARSERS) == set(_DEFAULTS), "every documented setting has exactly one parser"


def load_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """Entry points call this: a bad variable stops the process with one line and status 2."""
    try:
        return Settings.from_environ(environ)
    except SettingsError as ex:
        sys.stderr.write(f"workstream: invalid configuration: {ex}\n")
        raise SystemExit(2) from None
