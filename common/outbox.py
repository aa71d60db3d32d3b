"""Hand-offs between shards: work a script owes in another shard, finished by a mover.

A Lua script touches one shard's keys (one cluster slot), so a transition that owes work in
another shard (a schedule's run or a batch's callback for a queue of a named shard; a child
submitted with a parent in another shard, or a parent ending with children in another shard)
appends an entry to its own shard's outbox in the same call (_outbox.lua owe_handoff): the
target shard, a kind, a deterministic key (the job id, derived from what caused it; for a
dependency the pair `<kind>:<parent>><child>`) and a JSON body. The mover, run by every
worker's and the API's scheduler duty, reads a bounded number of due entries of each shard,
performs each in its target shard with an idempotent script (keyed and marked done: performed
once however often it is repeated), and only then removes the entry. A mover dying in between
leaves the entry, and the next one repeats it harmlessly; a target that refuses (an error
reply) leaves it due again a little later.

Without QUEUE_SHARDS nothing is ever owed and no mover runs: no extra Redis work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import redis

from workstream.common import scripts
from workstream.common.keys import Keys
from workstream.common.redis_conn import NotReplicatedError, call_replicated
from workstream.common.settings import Settings
from workstream.common.shards import shard_names

log = logging.getLogger(__name__)

# Entries read per shard per pass: a mover's pass is bounded work.
MOVE_BATCH = 100
# A hand-off its target refused is due again this much later (ms).
RETRY_MS = 5_000
# How long a target shard remembers a performed hand-off (ms): far longer than any entry waits.
HANDOFF_MARK_TTL_MS = 7 * 86_400_000
# kind -> the target shard's script that performs it (KEYS[1] handoff:<key>, the done mark): a
# job owed (a schedule's run, a batch's callback; keyed on its id) and a dependency across
# shards, keyed on parent and child: its link to the parent, its settle when the parent ended.
KIND_SCRIPTS = {"job": "handoff_create", "link": "dep_link", "settle": "dep_settle"}


@dataclass(frozen=True)
class Entry:
    source: str
    target: str
    kind: str
    key: str
    raw: str  # the outbox member, `<target>|<kind>|<key>`

    @classmethod
    def parse(cls, source: str, raw: str) -> Entry | None:
        target, sep1, rest = raw.partition("|")
        kind, sep2, key = rest.partition("|")
        if not (sep1 and sep2 and key):
            return None
        return cls(source, target, kind, key, raw)


@dataclass(frozen=True)
class MoveReport:
    moved: int  # performed in their target and removed
    deferred: int  # refused by their target (or unreadable): due again later
    more: bool  # a shard had a full batch due: call again soon


class Outbox:
    """The mover: performs the due hand-offs of every shard (call from a periodic duty)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.keys = {shard: Keys(settings.namespace, shard) for shard in shard_names(settings)}

    def owed(self) -> int:
        """Entries waiting in every shard's outbox."""
        pipe = self.redis.pipeline(transaction=False)
        for keys in self.keys.values():
            pipe.zcard(keys.outbox)
        return sum(int(count) for count in pipe.execute())

    def move(self, limit: int = MOVE_BATCH, now_ms: int | None = None) -> MoveReport:
        """One pass: at most `limit` due entries of each shard. One round trip when none is
        owed (one ZRANGE per shard, pipelined)."""
        pipe = self.redis.pipeline(transaction=False)
        for keys in self.keys.values():
            pipe.zrange(keys.outbox, 0, limit - 1, withscores=True)
        pages = cast(list[list[tuple[str, float]]], pipe.execute())
        if not any(pages):
            return MoveReport(0, 0, False)
        if now_ms is None:
            now_ms = self._server_ms()
        moved = deferred = 0
        more = False
        for source, page in zip(self.keys, pages, strict=True):
            due = [member for member, score in page if score <= now_ms]
            # Only due entries say more may be waiting: deferred ones are not due yet.
            more = more or len(due) >= limit
            if not due:
                continue
            bodies = cast(list["str | None"], self.redis.hmget(self.keys[source].outbox_body, due))
            for raw, body in zip(due, bodies, strict=True):
                if self._perform(source, raw, body):
                    moved += 1
                else:
                    deferred += 1
        if moved or deferred:
            log.info("outbox.moved", extra={"moved": moved, "deferred": deferred})
        return MoveReport(moved, deferred, more)

    def _perform(self, source: str, raw: str, body: str | None) -> bool:
        entry = Entry.parse(source, raw)
        if body is None or entry is None or entry.kind not in KIND_SCRIPTS:
            # A member without a body, or of a form no version wrote: nothing can perform it.
            log.error("outbox.unreadable", extra={"shard": source, "entry": raw})
            self._done(source, raw, 0)
            return False
        if entry.target not in self.keys:
            # A shard no longer configured: kept (and logged) until it is configured again.
            log.error("outbox.unknown_shard", extra={"shard": source, "entry": raw})
            self._done(source, raw, self._later())
            return False
        try:
            self._target_call(entry, body)
        except (redis.exceptions.ResponseError, NotReplicatedError) as exc:
            # The target refused (an error reply, a hand-edited key: nothing written there) or
            # its write is not yet on enough replicas: the entry stays and is due again later.
            log.error("outbox.refused", extra={"shard": source, "entry": raw, "error": str(exc)})
            self._done(source, raw, self._later())
            return False
        self._done(source, raw, 0)
        return True

    def _target_call(self, entry: Entry, body: str) -> Any:
        name = KIND_SCRIPTS[entry.kind]
        keys = self.keys[entry.target]
        script_keys = scripts.keys_for(
            scripts.SCRIPTS[name].keys, keys, job_id=entry.key, key=entry.key
        )
        args: list[Any] = [keys.prefix, entry.key, body, HANDOFF_MARK_TTL_MS]
        if self.settings.durability != "replicated":
            return scripts.call(self.redis, name, script_keys, args)
        # The entry is removed only once the target's write is on REPLICA_ACKS replicas:
        # a failover of the target's master cannot lose a hand-off the outbox has let go.
        timeout_ms = round(self.settings.replica_ack_timeout.total_seconds() * 1000)
        return call_replicated(
            self.redis, scripts.SCRIPTS[name], script_keys, args,
            self.settings.replica_acks, timeout_ms,
        )  # fmt: skip

    def _done(self, source: str, raw: str, due_again_ms: int) -> None:
        keys = self.keys[source]
        scripts.call(
            self.redis,
            "outbox_done",
            [keys.outbox, keys.outbox_body],
            [keys.prefix, raw, due_again_ms],
        )

    def _later(self) -> int:
        return self._server_ms() + RETRY_MS

    def _server_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


def open_outbox(client: redis.Redis, settings: Settings) -> Outbox | None:
    """The mover when shards are configured; None otherwise (nothing can be owed)."""
    return Outbox(client, settings) if settings.queue_shards else None
