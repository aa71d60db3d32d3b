"""Shard groups: queues placed on hash tags of their own, so a Redis Cluster spreads them over
its masters and they drain in parallel.

QUEUE_SHARDS=emails:a,images:b puts queue `emails` in shard `a` and `images` in shard `b`;
every other queue stays in the default shard. A shard is a key prefix with its own hash tag
(common/keys.py): the default shard keeps `ws:{<ns>}:` (today's layout: a standalone Redis
needs no migration), shard `a` uses `ws:{<ns>/a}:`. Everything of a queue lives in its shard:
jobs, lists, indexes, stats, the workers that serve it, their heartbeats and processing lists,
the sweeper lock. Each Lua script is given one prefix (ARGV[1]) and so touches one slot.

A job id names its shard: `<shard>:<32 hex>` (a default-shard id is the 32 hex digits alone),
so GET /jobs/{id}, cancel, retry and delete reach the right shard without asking each.

A worker process serves the queues of one shard (worker_shard refuses a mix at start-up). The
API holds a ShardedStore: one JobStore per shard, routing by queue or job id and assembling
the namespace-wide views (queues, workers, stats, listings) from all of them.

A queue's shard is fixed while its keys hold jobs: moving it (a new QUEUE_SHARDS entry) would
strand them where no worker of the new shard looks. misplaced() finds such jobs and the API and
workers refuse to start until they are drained (README: moving a queue to a shard).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import redis

from workstream.common.errors import (
    DependencyError,
    JobNotFoundError,
    SettingsError,
    ValidationError,
)
from workstream.common.jobs import MAX_DEPENDENTS, Job, JobSpec, new_job_id
from workstream.common.keys import Keys
from workstream.common.limits import Limits
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import (
    JobPage,
    JobStore,
    QueueInfo,
    WorkerInfo,
    _matches,
    _parse_cursor,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SHARD = ""
# A job id the store made for a named shard: `<shard>:<32 hex>`. Only the store makes ids of
# this form (a client's own id of this form is refused), so any other id is the default shard's.
SHARD_ID = re.compile(r"([a-z0-9_]{1,32}):[0-9a-f]{32}")


def shard_of(job_id: str) -> str:
    """The shard a job id names: '' (the default shard) for any id but `<shard>:<32 hex>`."""
    found = SHARD_ID.fullmatch(job_id)
    return found.group(1) if found else DEFAULT_SHARD


def new_shard_job_id(shard: str) -> str:
    return f"{shard}:{new_job_id()}" if shard else new_job_id()


def shard_of_queue(settings: Settings, queue: str) -> str:
    for name, shard in settings.queue_shards:
        if name == queue:
            return shard
    return DEFAULT_SHARD


def shard_names(settings: Settings) -> tuple[str, ...]:
    """The default shard first, then the named ones in name order."""
    return (DEFAULT_SHARD, *sorted({shard for _, shard in settings.queue_shards}))


def worker_shard(settings: Settings) -> str:
    """The one shard of a worker's QUEUES; SettingsError when they span several."""
    found = {queue: shard_of_queue(settings, queue) for queue in settings.queues}
    shards = set(found.values())
    if len(shards) > 1:
        listed = ", ".join(f"{q} in {s or 'the default shard'}" for q, s in sorted(found.items()))
        raise SettingsError(
            f"QUEUES: a worker process serves the queues of one shard, got {listed}; run one "
            "worker per shard"
        )
    return shards.pop() if shards else DEFAULT_SHARD


def open_store(client: redis.Redis, settings: Settings) -> JobStore:
    """A plain JobStore when every queue is in the default shard (today's behaviour), else a
    ShardedStore."""
    if not settings.queue_shards:
        return JobStore(client, settings)
    return ShardedStore(client, settings)


def misplaced(stores: Iterable[JobStore], queues: Sequence[str] | None = None) -> list[str]:
    """Jobs of a queue held in a shard other than the one QUEUE_SHARDS gives it now (its
    shard was changed while it held jobs): one line per queue and shard. Limited to `queues`
    when given."""
    problems = []
    for store in stores:
        known = {str(q) for q in store.redis.smembers(store.keys.queues)}
        wanted = known if queues is None else known & set(queues)
        strays = sorted(q for q in wanted if shard_of_queue(store.settings, q) != store.shard)
        for info in store.queue_infos(strays) if strays else []:
            held = info.pending + info.processing + info.scheduled + info.failed + info.parked
            if held:
                problems.append(
                    f"queue {info.name!r} holds {held} job(s) in "
                    f"{_shard_label(store.shard)} but QUEUE_SHARDS places it in "
                    f"{_shard_label(shard_of_queue(store.settings, info.name))}"
                )
    return problems


def refuse_misplaced(stores: Iterable[JobStore], queues: Sequence[str] | None = None) -> None:
    """SettingsError naming each queue whose jobs a shard change would strand."""
    problems = misplaced(stores, queues)
    if problems:
        raise SettingsError(
            "; ".join(problems) + ": drain the queue (pause it, let its jobs finish, retry or "
            "purge its failed ones) before moving it, or restore its QUEUE_SHARDS entry"
        )


def shards_in_place(
    client: redis.Redis, settings: Settings, queues: Sequence[str] | None = None
) -> bool:
    """At start-up with QUEUE_SHARDS: False (logged) when a queue's jobs sit in a shard it was
    moved away from (see misplaced), in any shard configured now or ever started with (the
    registry Keys.shards). Redis unreachable: True, the process starts and waits for Redis as
    it would without shards."""
    named = [shard for shard in shard_names(settings) if shard]
    registry = Keys(settings.namespace).shards
    try:
        client.sadd(registry, *named)
        used = sorted({str(shard) for shard in client.smembers(registry)} | set(named))
        stores = [JobStore(client, settings, shard) for shard in (DEFAULT_SHARD, *used)]
        refuse_misplaced(stores, queues)
    except SettingsError as ex:
        log.error("shards.misplaced_jobs", extra={"error": str(ex)})
        return False
    except redis.exceptions.RedisError as ex:
        log.warning("shards.not_checked", extra={"error": str(ex)})
    return True


def _shard_label(shard: str) -> str:
    return f"shard {shard!r}" if shard else "the default shard"


class ShardedStore(JobStore):
    """The API's view of every shard: one JobStore per shard on one client, routing each call
    by its queue or job id; namespace-wide reads are assembled from all of them. As a JobStore
    itself it is the default shard (what no override routes: HTTP leases, schedules)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        super().__init__(client, settings)
        self.stores: dict[str, JobStore] = {
            shard: JobStore(client, settings, shard) for shard in shard_names(settings)
        }

    def for_queue(self, queue: str) -> JobStore:
        return self.stores[shard_of_queue(self.settings, queue)]

    def for_job(self, job_id: str) -> JobStore | None:
        """None for an id naming a shard that is not configured: no such job here."""
        return self.stores.get(shard_of(job_id))

    def _candidates(self, job_id: str) -> list[JobStore]:
        """Where the job may be: the shard its id names; for a plain id the default shard,
        then the others (an id a script made, e.g. a callback job in its job's shard)."""
        shard = shard_of(job_id)
        if shard:
            return [self.stores[shard]] if shard in self.stores else []
        return list(self.stores.values())

    def holder(self, job_id: str) -> JobStore | None:
        """The shard store holding the job (see _candidates); None: none can."""
        candidates = self._candidates(job_id)
        for store in candidates[:-1]:
            if store.redis.exists(store.keys.job(job_id)):
                return store
        return candidates[-1] if candidates else None

    # -- submission -------------------------------------------------------------------------

    def enqueue_many(
        self, specs: Sequence[JobSpec], job_ids: Sequence[str] | None = None, **options: Any
    ) -> list[Any]:
        """A batch is all or nothing in one script, so its queues must share one shard. The
        ids name the shard (shard_of); a client's own id (`id`, where JobSpec has it) is for a
        default-shard queue only, and never of the store's `<shard>:<32 hex>` form. A parent
        (depends_on) in another shard is found there and linked by a hand-off (_deps.lua)."""
        shards = {shard_of_queue(self.settings, spec.queue) for spec in specs}
        if len(shards) > 1:
            raise ValidationError(
                "jobs", "a batch's queues must be in one shard (QUEUE_SHARDS); submit per shard"
            )
        shard = shards.pop() if shards else DEFAULT_SHARD
        for spec in specs:
            own = getattr(spec, "id", None)
            if own is not None and (shard or SHARD_ID.fullmatch(own)):
                raise ValidationError(
                    "id",
                    "a job in a named shard (QUEUE_SHARDS) gets its id from the store"
                    if shard
                    else "<shard>:<32 hex digits> is the form of the store's own ids",
                )
        if job_ids is None:
            job_ids = [getattr(spec, "id", None) or new_shard_job_id(shard) for spec in specs]
        batch = options.get("batch")
        if batch and shard_of(str(batch[0])) != shard:  # a batch's members are in its shard
            raise ValidationError(
                "jobs",
                f"a batch's jobs are in its own shard, {_shard_label(shard_of(str(batch[0])))} "
                f"(QUEUE_SHARDS), and these are in {_shard_label(shard)}",
            )
        remote = self._remote_parents(shard, specs, job_ids)
        if remote:
            options["remote_parents"] = remote
        return self.stores[shard].enqueue_many(specs, job_ids, **options)

    def _remote_parents(
        self, shard: str, specs: Sequence[JobSpec], job_ids: Sequence[str]
    ) -> dict[str, str]:
        """The parents (depends_on) of a submission to `shard` that live in another shard: id
        -> shard. A parent of the submission itself or of `shard` is enqueue.lua's to judge (an
        id no shard holds too: it answers unknown_parents). Refuses, before anything is
        written, a parent that would pass MAX_DEPENDENTS children (as enqueue.lua does for its
        own shard's). Two pipelined round trips at most, whatever the number of parents."""
        adding = Counter(p for spec in specs for p in getattr(spec, "depends_on", None) or ())
        for job_id in job_ids:
            adding.pop(job_id, None)
        if not adding:
            return {}
        looked = [(parent, store) for parent in adding for store in self._lookup(parent, shard)]
        pipe = self.redis.pipeline(transaction=False)
        for parent, store in looked:
            pipe.exists(store.keys.job(parent))
        remote: dict[str, str] = {}
        settled: set[str] = set()
        for (parent, store), found in zip(looked, pipe.execute() if looked else [], strict=True):
            if found and parent not in settled:
                settled.add(parent)  # the first shard holding it (this one first)
                if store.shard != shard:
                    remote[parent] = store.shard
        if remote:
            self._refuse_too_many_children(remote, adding)
        return remote

    def _lookup(self, parent: str, shard: str) -> list[JobStore]:
        """Where a parent may be: the shard its id names, or (a plain id) `shard`, then the
        others."""
        named = shard_of(parent)
        if named:
            return [self.stores[named]] if named in self.stores else []
        return [self.stores[shard], *(s for name, s in self.stores.items() if name != shard)]

    def _refuse_too_many_children(self, remote: dict[str, str], adding: Counter[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for parent, parent_shard in remote.items():
            pipe.hget(self.stores[parent_shard].keys.job(parent), "children_count")
        for parent, had in zip(remote, pipe.execute(), strict=True):
            if int(had or 0) + adding[parent] > MAX_DEPENDENTS:
                raise DependencyError("too_many_dependents", [parent])

    def enqueue(self, spec: JobSpec, job_id: str | None = None) -> Any:
        return self.enqueue_many([spec], None if job_id is None else [job_id])[0]

    # -- one job ----------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        for store in self._candidates(job_id):
            job = store.get_job(job_id)
            if job is not None:
                return job
        return None

    def get_jobs(self, job_ids: Iterable[str]) -> list[Job | None]:
        ids = list(job_ids)
        found: dict[str, Job | None] = {}
        for store in self.stores.values():  # the default shard first
            mine = [i for i in ids if found.get(i) is None and store in self._candidates(i)]
            if mine:
                found.update(
                    (i, job) for i, job in zip(mine, store.get_jobs(mine), strict=True) if job
                )
        return [found.get(i) for i in ids]

    def get_status(self, job_id: str) -> JobStatus | None:
        for store in self._candidates(job_id):
            status = store.get_status(job_id)
            if status is not None:
                return status
        return None

    def cancel(self, job_id: str) -> Job:
        return self._transition_in(job_id, lambda store: store.cancel(job_id))

    def cancel_requested(self, job_id: str) -> bool:
        store = self.holder(job_id)
        return store is not None and store.cancel_requested(job_id)

    def progress(self, job_id: str, lease: str, progress_json: str) -> bool | None:
        store = self.holder(job_id)
        return None if store is None else store.progress(job_id, lease, progress_json)

    def retry(self, job_id: str) -> Job:
        return self._transition_in(job_id, lambda store: store.retry(job_id))

    def delete(self, job_id: str) -> None:
        self._transition_in(job_id, lambda store: store.delete(job_id))

    def _transition_in(self, job_id: str, act: Callable[[JobStore], T]) -> T:
        """`act` on the first candidate shard that has the job (a transition's not_found runs
        nothing, so trying the next shard is safe)."""
        for store in self._candidates(job_id):
            try:
                return act(store)
            except JobNotFoundError:
                continue
        raise JobNotFoundError(job_id)

    # -- one queue --------------------------------------------------------------------------

    def failed_ids(self, queue: str, limit: int) -> list[str]:
        return self.for_queue(queue).failed_ids(queue, limit)

    def retry_failed(self, queue: str, limit: int = 1000) -> int:
        return self.for_queue(queue).retry_failed(queue, limit)

    def purge_failed(self, queue: str, limit: int = 1000) -> int:
        return self.for_queue(queue).purge_failed(queue, limit)

    def queue_exists(self, queue: str) -> bool:
        return self.for_queue(queue).queue_exists(queue)

    def pause(self, queue: str) -> None:
        self.for_queue(queue).pause(queue)

    def resume(self, queue: str) -> None:
        self.for_queue(queue).resume(queue)

    def delete_queue(self, queue: str) -> None:
        self.for_queue(queue).delete_queue(queue)

    def limits(self, queue: str) -> Limits:
        return self.for_queue(queue).limits(queue)

    def set_limits(self, queue: str, limits: Limits) -> None:
        self.for_queue(queue).set_limits(queue, limits)

    # -- namespace-wide views ---------------------------------------------------------------

    def queue_names(self) -> list[str]:
        names: set[str] = set()
        for shard, store in self.stores.items():
            # A shard lists the queues placed in it; a stray name elsewhere is misplaced().
            names |= {q for q in store.queue_names() if shard_of_queue(self.settings, q) == shard}
        return sorted(names)

    def queue_infos(
        self, names: Sequence[str] | None = None, *, serving: bool = False
    ) -> list[QueueInfo]:
        names = list(names) if names is not None else self.queue_names()
        found: dict[str, QueueInfo] = {}
        for shard, store in self.stores.items():
            mine = [n for n in names if shard_of_queue(self.settings, n) == shard]
            if mine:  # a shard's workers are the ones serving its queues
                found.update((i.name, i) for i in store.queue_infos(mine, serving=serving))
        return [found[n] for n in names]

    def paused_queues(self) -> set[str]:
        return set().union(*(s.paused_queues() for s in self.stores.values()))

    def live_workers(self) -> list[WorkerInfo]:
        return [w for store in self.stores.values() for w in store.live_workers()]

    def live_worker_count(self) -> int:
        return sum(store.live_worker_count() for store in self.stores.values())

    def stats(self) -> dict[str, int]:
        return _summed(store.stats() for store in self.stores.values())

    def inflight(self) -> dict[str, int]:
        return _summed(store.inflight() for store in self.stores.values())

    def promote(self, limit: int = 1000) -> tuple[int, int | None]:
        total, dues = 0, []
        for store in self.stores.values():
            promoted, next_due = store.promote(limit)
            total += promoted
            if next_due is not None:
                dues.append(next_due)
        return total, (min(dues) if dues else None)

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        queue: str | None = None,
        job_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scan_budget: int = 2000,
    ) -> JobPage:
        """Newest first across every shard (JobStore.list_jobs's cursor and budget): each
        shard's index entries are merged by score, ties in shard order, so the cursor's count
        of entries read at its score means the same on every call."""
        if queue is not None:
            return self.for_queue(queue).list_jobs(
                status=status, queue=queue, job_type=job_type, limit=limit,
                cursor=cursor, scan_budget=scan_budget,
            )  # fmt: skip
        score, offset = _parse_cursor(cursor)
        stores = list(self.stores.values())
        jobs: list[Job] = []
        examined = 0
        while examined < scan_budget and len(jobs) < limit:
            chunk = min(max(limit * 2, 50), scan_budget - examined)
            merged: list[tuple[float, int, int, str]] = []
            for index, store in enumerate(stores):
                key = store.keys.status(status) if status else store.keys.jobs
                found = store.redis.zrevrangebyscore(
                    key, score, "-inf", start=0, num=offset + chunk, withscores=True
                )
                entries = cast(list[tuple[str, float]], found)
                merged += [(-s, index, n, member) for n, (member, s) in enumerate(entries)]
            merged.sort()
            skip = min(offset, sum(1 for entry in merged if -entry[0] == score))
            page = merged[skip : skip + chunk]
            if not page:
                return JobPage(jobs, None)
            loaded = self.get_jobs([member for *_, member in page])
            for job, (negative, *_) in zip(loaded, page, strict=True):
                examined += 1
                if -negative == score:
                    offset += 1
                else:
                    score, offset = -negative, 1
                if _matches(job, status, queue, job_type):
                    jobs.append(cast(Job, job))
                    if len(jobs) == limit:
                        break
        return JobPage(jobs, f"{int(score)}-{offset}")


def _summed(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total
