"""Loads the Lua scripts once, renders their shared preamble and calls them by SHA."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import hiredis
import redis

from workstream.common.states import TRANSITIONS, JobStatus

# Histogram bucket upper bounds in ms for wait and run time, shared with Lua and /metrics.
BUCKETS_MS: tuple[int, ...] = (
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
)  # fmt: skip
# Counters the scripts keep per queue and type in the stats hash (`<counter>|<queue>|<type>`).
COUNTERS: tuple[str, ...] = ("created", "completed", "failed", "retried", "recovered", "cancelled")
# Scripts that keep the system running without changing a job's state.
MAINTENANCE_SCRIPTS = frozenset({"heartbeat", "prune", "pause_queue", "delete_queue"})
SCRIPT_NAMES = frozenset(TRANSITIONS) | MAINTENANCE_SCRIPTS


def _read(name: str) -> str:
    return (
        resources.files("workstream.common")
        .joinpath("scripts")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


# A top-level definition in the Lua library: `local function name(` or `local A, B =`.
_DEFINITION = re.compile(r"^local (?:function )?([A-Za-z_]\w*(?:, [A-Za-z_]\w*)*)", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z_]\w*")


def _library() -> list[tuple[frozenset[str], str]]:
    """The shared preamble as top-level definitions in order, each with the names it defines
    (the constants rendered from Python first: ST = status names, BUCKETS_MS = histogram
    bounds). Text before the first definition is kept with it."""
    statuses = ", ".join(f"{status.name.lower()} = '{status.value}'" for status in JobStatus)
    buckets = ", ".join(str(bound) for bound in BUCKETS_MS)
    text = f"local ST = {{{statuses}}}\nlocal BUCKETS_MS = {{{buckets}}}\n" + "".join(
        _read(name) for name in ("_lib.lua", "_claim.lua")
    )
    matches = list(_DEFINITION.finditer(text))
    ends = [match.start() for match in matches[1:]] + [len(text)]
    return [
        (frozenset(match.group(1).split(", ")), text[match.start() : end])
        for match, end in zip(matches, ends, strict=True)
    ]


def _preamble(body: str, library: list[tuple[frozenset[str], str]]) -> str:
    """The library definitions `body` uses, directly or through each other, in library order.
    Every definition in a script's preamble is run on each call (closures, tables), so a
    script carries only the helpers it needs: ~5 us of Redis time less per call."""
    defined = frozenset().union(*(names for names, _ in library))
    wanted = set(_WORD.findall(body)) & defined | {"P"}
    for names, chunk in reversed(library):  # a definition uses only those above it
        if names & wanted:
            wanted |= set(_WORD.findall(chunk)) & defined
    return "".join(chunk for names, chunk in library if names & wanted) + "\n"


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str


def _load_all() -> dict[str, Script]:
    library = _library()
    scripts = {}
    for name in sorted(SCRIPT_NAMES):
        body = _read(f"{name}.lua")
        source = _preamble(body, library) + body
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha)
    return scripts


SCRIPTS: dict[str, Script] = _load_all()


def call(client: redis.Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA, loading the script first when Redis lost its cache (a restart)."""
    script = SCRIPTS[name]
    send = _evalsha_pooled if client.connection is None else _evalsha_direct
    try:
        return send(client, script.sha, keys, args)
    except redis.exceptions.NoScriptError:
        client.script_load(script.source)
        return send(client, script.sha, keys, args)


def _evalsha_pooled(client: redis.Redis, sha: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA on a connection checked out of the client's pool, packed by hiredis in one
    call: redis-py's packer first copies every argument through a generator (~2 us per job
    in a batch of 1,000). What redis-py does around it is kept: a socket error disconnects
    (the next checkout reconnects) and raises, an error reply raises, and the connection
    always goes back to the pool. No retries, as everywhere (see common.redis_conn)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(  # type: ignore[no-untyped-call]
            [hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))]
        )
        return connection.read_response()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        connection.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(connection)


def _evalsha_direct(client: redis.Redis, sha: str, keys: list[str], args: list[Any]) -> Any:
    """On a dedicated (single-connection) client, owned by one thread: the command is packed
    by hiredis and sent on the connection itself. redis-py's per-command machinery (retry
    wrapper, lock, argument checks, observability hooks) costs ~20 us of CPU per call, a fifth
    of a single enqueue; none of it applies here (no retries by design, one thread). Errors
    behave as usual: a socket error disconnects and raises, an error reply raises."""
    connection = client.connection
    assert connection is not None
    connection.send_packed_command(  # type: ignore[no-untyped-call]
        [hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))], check_health=False
    )
    return connection.read_response()


def call_behind(
    client: redis.Redis, command: tuple[Any, ...], name: str, keys: list[str], args: list[Any]
) -> tuple[Any, Any]:
    """`command` and then the script, pipelined in one round trip on a dedicated client; both
    replies. Redis reads a blocked client's next command only once the blocking command has
    been served, so the script sees what a BLMOVE in front of it did. An error reply to
    `command` is raised once both replies are read (the connection stays in step); a script
    Redis lost (a restart) is loaded and the script alone sent again."""
    connection = client.connection
    assert connection is not None
    sha = SCRIPTS[name].sha
    connection.send_packed_command(  # type: ignore[no-untyped-call]
        # One buffer: one send, and Redis reads both commands at once.
        [
            hiredis.pack_command(command)
            + hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
        ],
        check_health=False,
    )
    first = _read_reply(connection)
    second = _read_reply(connection)
    if isinstance(first, redis.exceptions.ResponseError):
        raise first
    if isinstance(second, redis.exceptions.NoScriptError):
        return first, call(client, name, keys, args)
    if isinstance(second, redis.exceptions.ResponseError):
        raise second
    return first, second


def _read_reply(connection: Any) -> Any:
    try:
        return connection.read_response()
    except redis.exceptions.ResponseError as ex:  # an error reply; the socket is fine
        return ex


ScriptCall = tuple[str, list[str], list[Any]]


def call_many(client: redis.Redis, calls: list[ScriptCall]) -> list[Any]:
    """Runs several script calls in one round trip (a non-transactional pipeline). Redis loses
    its script cache only on restart, and then every call fails with NOSCRIPT before running,
    so loading the scripts and re-sending only those calls runs each exactly once."""
    results = _pipeline(client, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)]
    if missing:
        for name in {calls[i][0] for i in missing}:
            client.script_load(SCRIPTS[name].source)
        for i, result in zip(missing, _pipeline(client, [calls[i] for i in missing]), strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _pipeline(client: redis.Redis, calls: list[ScriptCall]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for name, keys, args in calls:
        pipe.evalsha(SCRIPTS[name].sha, len(keys), *keys, *args)
    return list(pipe.execute(raise_on_error=False))
