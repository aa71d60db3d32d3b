"""Loads the Lua scripts once, renders their shared preamble and calls them by SHA."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from workstream.common import jobs
from workstream.common.events import EVENT_DETAIL_MAX, EVENTS_MAX_DEFAULT, PROGRESS_EVENT_MS
from workstream.common.keys import Keys
from workstream.common.states import TRANSITIONS, JobStatus

# Histogram bucket upper bounds in ms for wait and run time, shared with Lua and /metrics.
BUCKETS_MS: tuple[int, ...] = (
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
)  # fmt: skip
# Counters the scripts keep per queue and type in the stats hash (`<counter>|<queue>|<type>`).
COUNTERS: tuple[str, ...] = ("created", "completed", "failed", "retried", "recovered", "cancelled")
# Scripts that keep the system running without changing a job's state.
MAINTENANCE_SCRIPTS = frozenset({"heartbeat", "prune", "pause_queue", "delete_queue"}) | {
    # Schedules (common/schedules.py): store a definition; fire a due run, creating its job.
    "schedule_put",
    "schedule_fire",
    # ctx.progress(): store a running job's progress under its lease (changes no state).
    "progress",
    # Batches (common/batches.py): seal an open batch, settling it (its callback jobs
    # created) when every member already finished.
    "batch_seal",
    # Hand-offs between shards (common/outbox.py): create a job another shard owes, once;
    # remove (or defer) a performed outbox entry; a dependency across shards: register a child
    # with its parent (link), tell a child its parent ended (settle: released or cancelled, as
    # a parent in its own shard would; _deps.lua).
    "handoff_create",
    "outbox_done",
    "dep_link",
    "dep_settle",
}
SCRIPT_NAMES = frozenset(TRANSITIONS) | MAINTENANCE_SCRIPTS


def _read(name: str) -> str:
    return (
        resources.files("workstream.common")
        .joinpath("scripts")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


# Keys a script can only name from what it finds (an id in a list, a job's queue or worker) or
# from data in ARGV (a batch's queues) are built in Lua by key_<name>(arg), rendered below from
# common/keys.py over the namespace's hash-tagged prefix P = ARGV[1]; every other key a script
# touches is declared in its header and passed in KEYS (see keys_for), as redis-py's Lock does.
BUILDERS: tuple[str, ...] = (
    "job", "queue", "processing", "worker", "scheduled", "dead", "idempotency", "types",
    "schedule", "unique", "limits", "groups", "waiting", "priority",
    "dependents", "awaiting", "batch", "batch_jobs", "remote_children",
)  # fmt: skip
_ARG = "\x00arg\x00"


def _builders() -> str:
    """`local function key_job(a) return P .. 'job:' .. a end`, ... from Keys itself."""
    keys = Keys("ns")
    lines = []
    for name in BUILDERS:
        key: str = getattr(keys, name)(_ARG)
        head, _, tail = key.removeprefix(keys.prefix).partition(_ARG)
        assert key.startswith(keys.prefix) and not tail, name
        lines.append(f"local function key_{name}(a) return P .. '{head}' .. a end\n")
    return "".join(lines)


def _suffix(key: str) -> str:
    """A fixed key without the namespace's prefix (Lua prepends P)."""
    prefix = Keys("ns").prefix
    assert key.startswith(prefix), key
    return key.removeprefix(prefix)


# A top-level definition in the Lua library: `local function name(` or `local A, B =`.
_DEFINITION = re.compile(r"^local (?:function )?([A-Za-z_]\w*(?:, [A-Za-z_]\w*)*)", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z_]\w*")


# The library files in dependency order (a definition uses only those above it); a file not
# (yet) written is skipped. _finish.lua's on_finished calls each feature's function, so the
# feature files come before it, and _claim.lua (a claim cancels expired jobs) after it.
LIBRARY: tuple[str, ...] = (
    "_lib.lua",
    "_events.lua",  # event(): every transition appended to the events stream
    "_outbox.lua",  # owe_handoff(): work owed in another shard (common/outbox.py)
    "_callbacks.lua",  # owe_callback(): a finished job's callback_url
    "_deps.lua",  # settle_dependents(): jobs waiting for this one
    "_batches.lua",  # settle_batch(): the job's batch
    "_finish.lua",  # on_finished(): the hook every terminal transition calls
    "_claim.lua",
)


# (Lua name, Keys property) of the fixed keys rendered for _batches.lua.
BATCH_FIXED_KEYS: tuple[tuple[str, str], ...] = (
    ("JOBS_INDEX_KEY", "jobs"),
    ("BATCHES_KEY", "batches"),
    ("BATCH_EXPIRIES_KEY", "batch_expiries"),
)


def _exists(name: str) -> bool:
    return resources.files("workstream.common").joinpath("scripts").joinpath(name).is_file()


def _library() -> list[tuple[frozenset[str], str]]:
    """The shared preamble as top-level definitions in order, each with the names it defines
    (the constants rendered from Python first: ST = status names, BUCKETS_MS = histogram
    bounds, the attempt history's bounds, the key builders). Text before the first definition
    is kept with it."""
    keys = Keys("ns")
    statuses = ", ".join(f"{status.name.lower()} = '{status.value}'" for status in JobStatus)
    buckets = ", ".join(str(bound) for bound in BUCKETS_MS)
    text = (
        f"local ST = {{{statuses}}}\nlocal BUCKETS_MS = {{{buckets}}}\n"
        + f"local HISTORY_MAX_ENTRIES = {jobs.HISTORY_MAX_ENTRIES}\n"
        + f"local HISTORY_MAX_BYTES = {jobs.HISTORY_MAX_BYTES}\n"
        # start_ids (claim, start, complete's piggybacked claim) starts what `start` may.
        + f"local START_SOURCES = {_lua_set(TRANSITIONS['start'].sources)}\n"
        + _builders()
        # The event stream (_events.lua): its key and its cap's key, built from P like the
        # builders above (the stream is the namespace's, in its slot; see common/events.py).
        + f"local EVENTS_KEY, EVENTS_MAX_KEY = P .. '{_suffix(keys.events)}', "
        + f"P .. '{_suffix(keys.events_max)}'\n"
        + f"local EVENTS_MAX_DEFAULT = {EVENTS_MAX_DEFAULT}\n"
        + f"local EVENT_DETAIL_MAX = {EVENT_DETAIL_MAX}\n"
        + f"local PROGRESS_EVENT_MS = {PROGRESS_EVENT_MS}\n"
        # _deps.lua gives a job cancelled by a failed parent its result TTL from any script that
        # ends a job, also those with no expiries key in their KEYS (the claims).
        + f"local EXPIRIES_KEY = P .. '{_suffix(keys.expiries)}'\n"
        + f"local CHILDREN_SHOWN = {jobs.MAX_CHILDREN_SHOWN}\n"
        + f"local MAX_DEPENDENTS = {jobs.MAX_DEPENDENTS}\n"
        # Batches (_batches.lua): fixed keys a batch's settling writes from whichever script
        # ends its last member (the finish hook), so none of them can name them in KEYS.
        + "".join(
            f"local {name} = P .. '{getattr(keys, attr).removeprefix(keys.prefix)}'\n"
            for name, attr in BATCH_FIXED_KEYS
        )
        # The outbox (_outbox.lua): a hand-off owed from any script (a batch settled by the
        # finish hook), so none of them can name it in KEYS.
        + f"local OUTBOX_KEY, OUTBOX_BODY_KEY = P .. '{_suffix(keys.outbox)}', "
        + f"P .. '{_suffix(keys.outbox_body)}'\n"
        + "".join(_read(name) for name in LIBRARY if _exists(name))
    )
    matches = list(_DEFINITION.finditer(text))
    ends = [match.start() for match in matches[1:]] + [len(text)]
    return [
        (frozenset(match.group(1).split(", ")), text[match.start() : end])
        for match, end in zip(matches, ends, strict=True)
    ]


def _words(lua: str) -> set[str]:
    """Names used by Lua code, its comments left out."""
    return set(_WORD.findall("\n".join(line.split("--", 1)[0] for line in lua.splitlines())))


def _preamble(body: str, library: list[tuple[frozenset[str], str]]) -> str:
    """The library definitions `body` uses, directly or through each other, in library order.
    Every definition in a script's preamble is run on each call (closures, tables), so a
    script carries only the helpers it needs: ~5 us of Redis time less per call."""
    defined = frozenset().union(*(names for names, _ in library))
    wanted = _words(body) & defined
    for names, chunk in reversed(library):  # a definition uses only those above it
        if names & wanted:
            wanted |= _words(chunk) & defined
    return "".join(chunk for names, chunk in library if names & wanted) + "\n"


# The header's key contract: `KEYS[1] processing:<worker_id>  KEYS[2] stats  KEYS[3..8] status:*`.
_KEY_SPEC = re.compile(r"KEYS\[(\d+)(?:\.\.(\d*))?\] ([a-z_]+(?::<[a-z_]+>|:\*)?)")
ALL_STATUSES = "status:*"
# `KEYS[n..] queue:<queues>`: the last keys, one list per queue name the script is given.
EACH_QUEUE = "queue:<queues>"


def key_specs(body: str) -> tuple[str, ...]:
    """The keys a script declares in its header, in KEYS order (status:* spans six)."""
    header = "".join(line for line in body.splitlines(keepends=True) if line.startswith("--"))
    specs: list[str] = []
    for match in _KEY_SPEC.finditer(header.split("-- ARGV", 1)[0]):
        first, last, spec = int(match.group(1)), match.group(2), match.group(3)
        width = len(JobStatus) if spec == ALL_STATUSES else 1
        assert first == len(specs) + 1 + (len(JobStatus) - 1) * specs.count(ALL_STATUSES), (
            f"KEYS[{first}] out of order"
        )
        if spec == EACH_QUEUE:
            assert last == "", f"{spec} is KEYS[{first}..]: one per queue, the last keys"
        else:
            assert int(last or first) == first + width - 1, f"{spec} spans {width} keys"
        assert EACH_QUEUE not in specs, f"{EACH_QUEUE} must come last"
        specs.append(spec)
    return tuple(specs)


def _lua_set(statuses: frozenset[JobStatus]) -> str:
    members = ", ".join(f"{s.value} = true" for s in JobStatus if s in statuses)
    return f"{{{members}}}"


def _sources(name: str) -> str:
    """SOURCES: the statuses this transition may start from, from common/states.py."""
    if name not in TRANSITIONS:
        return ""
    return f"local SOURCES = {_lua_set(TRANSITIONS[name].sources)}\n"


def _key_locals(specs: tuple[str, ...]) -> str:
    """KEY_<name> = KEYS[i] for each declared key, STATUS_KEY[status] for the status indexes."""
    lines, index = [], 1
    for spec in specs:
        if spec == EACH_QUEUE:
            lines.append(f"local QUEUE_KEYS_FROM = {index}\n")
        elif spec == ALL_STATUSES:
            pairs = ", ".join(
                f"{status.value} = KEYS[{index + i}]" for i, status in enumerate(JobStatus)
            )
            lines.append(f"local STATUS_KEY = {{{pairs}}}\n")
            index += len(JobStatus)
        else:
            lines.append(f"local KEY_{spec.split(':')[0]} = KEYS[{index}]\n")
            index += 1
    return "".join(lines)


def keys_for(
    spec_list: tuple[str, ...], keys: Keys, queues: Sequence[str] = (), **params: str
) -> list[str]:
    """KEYS for a script, in its header's order, from common/keys.py: `job:<job_id>` is
    keys.job(params["job_id"]), `stats` keys.stats, `status:*` every status index,
    `queue:<queues>` keys.queue(name) for each of `queues`."""
    built: list[str] = []
    for spec in spec_list:
        name, _, param = spec.partition(":")
        if spec == EACH_QUEUE:
            built.extend(keys.queue(queue) for queue in queues)
        elif spec == ALL_STATUSES:
            built.extend(keys.status(status) for status in JobStatus)
        elif param:
            built.append(getattr(keys, name)(params[param.strip("<>")]))
        else:
            built.append(getattr(keys, name))
    return built


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str
    keys: tuple[str, ...]  # the header's KEYS contract, see keys_for


def _load_all() -> dict[str, Script]:
    library = _library()
    scripts = {}
    for name in sorted(SCRIPT_NAMES):
        body = _read(f"{name}.lua")
        specs = key_specs(body)
        source = (
            "local P = ARGV[1]\n"
            + _key_locals(specs)
            + _sources(name)
            + _preamble(body, library)
            + body
        )
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha, specs)
    return scripts


SCRIPTS: dict[str, Script] = _load_all()


def call(client: redis.Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA, loading the script first when Redis lost its cache (a restart). NOSCRIPT is
    answered before the script runs, so sending it again runs it exactly once. redis-py's
    public API only: no retries (see common.redis_conn), an error reply raises."""
    script = SCRIPTS[name]
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        client.script_load(script.source)
        return client.evalsha(script.sha, len(keys), *keys, *args)


def blmove_then(
    client: redis.Redis,
    source: str,
    target: str,
    timeout_s: float,
    name: str,
    keys: list[str],
    args: list[Any],
) -> Any:
    """BLMOVE and then the script, pipelined in one round trip (a non-transactional
    pipeline); the script's reply. Redis reads a blocked client's next command only once the
    blocking command has been served, so the script sees what the BLMOVE did. An error reply
    to BLMOVE raises once both replies are read; a script Redis lost (a restart) is loaded and
    the script alone sent again (NOSCRIPT: it did not run)."""
    pipe = client.pipeline(transaction=False)
    # Redis takes decimal seconds; redis-py's stubs say int.
    pipe.blmove(source, target, timeout_s, "RIGHT", "LEFT")  # type: ignore[arg-type]
    pipe.evalsha(SCRIPTS[name].sha, len(keys), *keys, *args)
    moved, reply = pipe.execute(raise_on_error=False)
    if isinstance(moved, Exception):
        raise moved
    if isinstance(reply, redis.exceptions.NoScriptError):
        return call(client, name, keys, args)
    if isinstance(reply, Exception):
        raise reply
    return reply


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
