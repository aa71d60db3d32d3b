"""Batches: jobs created together, in one call or into an open batch over several, whose
callback jobs (on_complete, on_success) are created by the script that ends the last member.

Every write is one Lua call: members join in enqueue.lua's own call (all or nothing, capacity
and bounds as for any job; common/scripts/_batches.lua), sealing is batch_seal.lua, and the
settling happens inside whichever script ends the last member (the finish hook) or at seal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from workstream.common import scripts
from workstream.common.errors import BatchConflictError, BatchNotFoundError, ValidationError
from workstream.common.jobs import EnqueueResult, JobSpec, new_job_id
from workstream.common.keys import Keys
from workstream.common.serialization import ms_to_rfc3339
from workstream.common.shards import new_shard_job_id, shard_of, shard_of_queue
from workstream.common.states import JobStatus
from workstream.common.store import JobStore, _parse_cursor

# Members a batch may hold in all (each call adds at most MAX_BATCH, as POST /jobs/batch).
MAX_BATCH_JOBS = 1_000_000
# Failed or cancelled member ids kept for the summary (_batches.lua BATCH_FAILED_IDS_MAX).
FAILED_IDS_MAX = 100
STATES = ("open", "sealed", "settled")
# Members in each status now, in the batch hash's live_<status> fields: moved by every script
# that moves a member (_lib.lua batch_move), so reading them is O(1) whatever the batch's size.
LIVE_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.WAITING,
    JobStatus.SCHEDULED,
    JobStatus.PENDING,
    JobStatus.PROCESSING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
CALLBACKS = ("on_complete", "on_success")
CALLBACK_FIELDS = frozenset({"type", "payload", "queue", "max_attempts", "timeout"})
# The callback payload's key that the batch summary takes.
SUMMARY_KEY = "batch"


@dataclass(frozen=True)
class Callback:
    """A callback job to create when the batch settles; its id is chosen now, so the job is
    created once whatever sends the settling script again."""

    job_id: str
    type: str
    queue: str
    payload_json: str
    max_attempts: int
    timeout_ms: int

    # The queue's shard when it is not the batch's own (QUEUE_SHARDS; "" is the default
    # shard): the job is then handed off through the batch's shard's outbox when the batch
    # settles (common/outbox.py). None: created by the settling script itself.
    to: str | None = None

    def meta_json(self) -> str:
        meta: dict[str, Any] = {
            "id": self.job_id,
            "type": self.type,
            "queue": self.queue,
            "max_attempts": self.max_attempts,
            "timeout_ms": self.timeout_ms,
        }
        if self.to is not None:
            meta["to"] = self.to
        return orjson.dumps(meta).decode()


def callback_spec(which: str, data: Any) -> JobSpec:
    """A callback as the client sent it: a job with type, payload (an object, whose `batch`
    key the summary takes), queue, max_attempts and timeout."""
    if not isinstance(data, Mapping):
        raise ValidationError(which, "expected a job object with a type")
    unknown = sorted(set(data) - CALLBACK_FIELDS)
    if unknown:
        raise ValidationError(f"{which}.{unknown[0]}", "unknown field")
    payload = data.get("payload")
    if payload is not None and not isinstance(payload, Mapping):
        raise ValidationError(f"{which}.payload", "expected an object (the summary joins it)")
    if payload is not None and SUMMARY_KEY in payload:
        raise ValidationError(f"{which}.payload.{SUMMARY_KEY}", "reserved for the batch summary")
    try:
        return JobSpec.from_mapping(data)
    except ValidationError as ex:
        raise ValidationError(f"{which}.{ex.field}", ex.message) from None


@dataclass(frozen=True)
class CallbackInfo:
    type: str
    queue: str
    job_id: str
    created: bool  # the job exists (created when the batch settled)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "queue": self.queue,
            "job_id": self.job_id,
            "created": self.created,
        }


@dataclass(frozen=True)
class Batch:
    id: str
    state: str
    total: int
    completed: int
    failed: int
    cancelled: int
    created_at: int | None
    sealed_at: int | None
    settled_at: int | None
    on_complete: CallbackInfo | None
    on_success: CallbackInfo | None
    failed_ids: tuple[str, ...]
    # Members by their status now (LIVE_STATUSES order); None for a record written before the
    # live counts existed (they would not add up to total).
    statuses: dict[str, int] | None = None

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.cancelled

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> Batch:
        def number(name: str) -> int:
            try:
                return int(data.get(name) or 0)
            except ValueError:
                return 0

        def time(name: str) -> int | None:
            return number(name) or None

        def callback(which: str) -> CallbackInfo | None:
            raw = data.get(which)
            if not raw:
                return None
            try:
                meta = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
            made = data.get(f"{which}_job")
            return CallbackInfo(
                str(meta.get("type")), str(meta.get("queue")), str(meta.get("id")), bool(made)
            )

        failed_ids = tuple(i for i in (data.get("failed_ids") or "").split(",") if i)
        statuses: dict[str, int] | None = {
            status.value: number(f"live_{status.value}") for status in LIVE_STATUSES
        }
        if statuses is not None and sum(statuses.values()) != number("total"):
            statuses = None
        return cls(
            id=data["id"],
            state=data.get("state") or "open",
            total=number("total"),
            completed=number("completed"),
            failed=number("failed"),
            cancelled=number("cancelled"),
            created_at=time("created_at"),
            sealed_at=time("sealed_at"),
            settled_at=time("settled_at"),
            on_complete=callback("on_complete"),
            on_success=callback("on_success"),
            failed_ids=failed_ids,
            statuses=statuses,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "total": self.total,
            "counts": {
                "active": max(self.total - self.done, 0),
                "completed": self.completed,
                "failed": self.failed,
                "cancelled": self.cancelled,
            },
            "statuses": None if self.statuses is None else dict(self.statuses),
            "progress": 1.0 if self.total == 0 else round(self.done / self.total, 4),
            "created_at": ms_to_rfc3339(self.created_at),
            "sealed_at": ms_to_rfc3339(self.sealed_at),
            "settled_at": ms_to_rfc3339(self.settled_at),
            "on_complete": None if self.on_complete is None else self.on_complete.to_json(),
            "on_success": None if self.on_success is None else self.on_success.to_json(),
            "failed_ids": list(self.failed_ids),
        }


@dataclass(frozen=True)
class Member:
    id: str
    status: JobStatus | None  # None: the record expired (RESULT_TTL)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": None if self.status is None else self.status.value}


@dataclass(frozen=True)
class BatchPage:
    batches: list[Batch]
    next_cursor: str | None


def keyed_batch_id(key: str) -> str:
    """The batch id an Idempotency-Key stands for: the same key creates the same batch."""
    return hashlib.blake2b(f"batch:{key}".encode(), digest_size=16).hexdigest()


def entry_key(batch_id: str, key: str, index: int) -> str:
    """The idempotency key of entry `index` of a call sent with Idempotency-Key `key` into
    `batch_id`: a retried call replays each entry instead of adding it again (the existing
    idempotency machinery, per job). At most 35 characters, within the keys' pattern."""
    digest = hashlib.blake2b(f"{batch_id}:{key}".encode(), digest_size=12).hexdigest()
    return f"batch.{digest}.{index}"


class BatchStore:
    """Batches of one JobStore, or of every shard of a ShardedStore: a batch lives in the shard
    of its members' queues (its id names it, as a job's does: `<shard>:<32 hex>`), so its
    members' scripts move its counts and settle it in their own slot; its callbacks may be for
    any queue (handed off when theirs is another shard)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = store.keys
        self._ttl_ms = round(store.settings.result_ttl.total_seconds() * 1000)
        self.max_jobs = MAX_BATCH_JOBS  # members a batch may hold (a test lowers it)

    def _shard_stores(self) -> list[JobStore]:
        """Every shard's store (the default shard first); one without shards."""
        stores = getattr(self.store, "stores", None)
        return list(stores.values()) if isinstance(stores, dict) else [self.store]

    def _keys_of(self, batch_id: str) -> Keys:
        """The keys of the batch's shard (its id names it)."""
        return Keys(self.keys.namespace, shard_of(batch_id))

    def placed(self, batch_id: str, specs: Sequence[JobSpec]) -> str:
        """The id of a new batch made for `specs`: `batch_id` (32 hex digits), in the shard of
        their queues (`<shard>:<hex>` for a named one; an empty batch is the default shard's).
        A queue of several shards is refused when the jobs are sent."""
        shard = shard_of_queue(self.store.settings, specs[0].queue) if specs else ""
        return f"{shard}:{batch_id}" if shard and shard_of(batch_id) != shard else batch_id

    def _refuse_placed_elsewhere(self, batch_id: str, specs: Sequence[JobSpec]) -> None:
        """An Idempotency-Key's batch id that already names a batch in another shard (the key
        sent again with jobs of another shard): BatchConflictError, as the same key sent with
        other jobs of the same shard is. One round trip, only with shards."""
        stores = self._shard_stores()
        if len(stores) == 1:
            return
        mine = self.placed(batch_id, specs)
        others = [f"{s.shard}:{batch_id}" if s.shard else batch_id for s in stores]
        others = [other for other in others if other != mine]
        pipe = self.redis.pipeline(transaction=False)
        for other in others:
            pipe.exists(self._keys_of(other).batch(other))
        for other, found in zip(others, pipe.execute(), strict=True):
            if found:
                raise BatchConflictError(other)

    def _callback(self, spec: JobSpec | None, batch_shard: str) -> Callback | None:
        if spec is None:
            return None
        settings = self.store.settings
        timeout = settings.job_timeout.total_seconds() if spec.timeout is None else spec.timeout
        shard = shard_of_queue(settings, spec.queue)
        return Callback(
            job_id=new_shard_job_id(shard),
            type=spec.type,
            queue=spec.queue,
            payload_json=spec.payload_json(),
            max_attempts=spec.max_attempts or settings.max_attempts,
            timeout_ms=round(timeout * 1000),
            to=None if shard == batch_shard else shard,
        )

    def create(
        self,
        specs: Sequence[JobSpec],
        *,
        sealed: bool,
        on_complete: JobSpec | None = None,
        on_success: JobSpec | None = None,
        batch_id: str | None = None,
    ) -> tuple[str, list[EnqueueResult]]:
        """Creates the batch with its first members in one call. A given batch_id (from an
        Idempotency-Key) that exists already is a replay: nothing is created."""
        if batch_id is not None:
            self._refuse_placed_elsewhere(batch_id, specs)
        batch_id = self.placed(batch_id or new_job_id(), specs)
        tail: list[Any] = [batch_id, "create", self.max_jobs, "sealed" if sealed else "open"]
        tail.append(self._ttl_ms)
        for spec in (on_complete, on_success):
            callback = self._callback(spec, shard_of(batch_id))
            if callback is None:
                tail += ["", ""]
            else:
                tail += [callback.meta_json(), callback.payload_json]
        return batch_id, self.store.enqueue_many(specs, batch=tail)

    def add(self, batch_id: str, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """Adds members to an open batch in one call (all or nothing)."""
        return self.store.enqueue_many(specs, batch=[batch_id, "add", self.max_jobs])

    def seal(self, batch_id: str) -> Batch:
        keys = self._keys_of(batch_id)
        script_keys = scripts.keys_for(scripts.SCRIPTS["batch_seal"].keys, keys)
        # With DURABILITY=replicated the seal (and a settlement it makes) waits for replicas too.
        reply = self.store._acknowledged("batch_seal", script_keys, [keys.prefix, batch_id])
        if reply[0] == "not_found":
            raise BatchNotFoundError(batch_id)
        return self.require(batch_id)

    def get(self, batch_id: str) -> Batch | None:
        data = cast(dict[str, str], self.redis.hgetall(self._keys_of(batch_id).batch(batch_id)))
        return Batch.from_hash(data) if data.get("id") else None

    def require(self, batch_id: str) -> Batch:
        batch = self.get(batch_id)
        if batch is None:
            raise BatchNotFoundError(batch_id)
        return batch

    def exists(self, batch_id: str) -> bool:
        return bool(self.redis.exists(self._keys_of(batch_id).batch(batch_id)))

    def members(self, batch_id: str, offset: int, limit: int) -> tuple[list[Member], int | None]:
        """Member ids from `offset` in the order they joined, each with its status now; the
        next offset, or None at the end."""
        keys = self._keys_of(batch_id)
        ids = cast(list[str], self.redis.lrange(keys.batch_jobs(batch_id), offset, offset + limit))
        more = len(ids) > limit
        ids = ids[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), "status")
        statuses = pipe.execute() if ids else []
        members = [
            Member(job_id, None if status is None else JobStatus(status))
            for job_id, status in zip(ids, statuses, strict=True)
        ]
        return members, (offset + limit if more else None)

    def list(self, limit: int = 50, cursor: str | None = None) -> BatchPage:
        """Newest first over every shard, cursor-paged as GET /jobs is (each shard's index
        entries merged by score, ties in shard order, so the cursor's count of entries read at
        its score means the same on every call); an expired batch is skipped."""
        score, offset = _parse_cursor(cursor)
        shards = [store.keys for store in self._shard_stores()]
        merged: list[tuple[float, int, int, str]] = []
        for index, keys in enumerate(shards):
            found = self.redis.zrevrangebyscore(
                keys.batches, score, "-inf", start=0, num=offset + limit, withscores=True
            )
            entries = cast(list[tuple[str, float]], found)
            merged += [(-s, index, n, member) for n, (member, s) in enumerate(entries)]
        merged.sort()
        skip = min(offset, sum(1 for entry in merged if -entry[0] == score))
        page = merged[skip : skip + limit]
        pipe = self.redis.pipeline(transaction=False)
        for _, index, _, batch_id in page:
            pipe.hgetall(shards[index].batch(batch_id))
        batches = []
        for data, (negative, *_) in zip(pipe.execute() if page else [], page, strict=True):
            if -negative == score:
                offset += 1
            else:
                score, offset = -negative, 1
            if data.get("id"):
                batches.append(Batch.from_hash(data))
        next_cursor = f"{int(score)}-{offset}" if len(page) == limit else None
        return BatchPage(batches, next_cursor)
