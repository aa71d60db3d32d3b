"""JobStore: every read and state change of jobs in Redis, one typed method per Lua script."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from workstream.common import scripts
from workstream.common.deps import submission_order
from workstream.common.errors import (
    BatchConflictError,
    BatchNotFoundError,
    BatchSealedError,
    BatchTooLargeError,
    DependencyError,
    DuplicateJobError,
    IdConflictError,
    IdempotencyConflictError,
    InvalidTransitionError,
    JobNotFoundError,
    NotInBatchError,
    QueueFullError,
    QueueNotEmptyError,
    QueueNotFoundError,
    StaleLeaseError,
    TooManyQueuesError,
    TooManyTypesError,
)
from workstream.common.jobs import (
    CLAIM_FIELDS,
    LISTED_FIELDS,
    ClaimedJob,
    EnqueueResult,
    Job,
    JobSpec,
    new_job_id,
)
from workstream.common.keys import WAKE, Keys
from workstream.common.limits import FIELDS as LIMIT_FIELDS
from workstream.common.limits import PARKED_FIELD, Limits
from workstream.common.redis_conn import call_replicated, confirm_replicated
from workstream.common.settings import Settings
from workstream.common.states import JobStatus

MAX_BATCH = 1000
# The worker id of an HTTP consumer (common.leases) starts with this.
HTTP_CONSUMER_PREFIX = "http:"
# Handler types a heartbeat carries (sorted, the first ones): a worker hash stays bounded.
MAX_HEARTBEAT_HANDLERS = 1000
_STATUS_BY_VALUE = {status.value: status for status in JobStatus}  # faster than JobStatus(v)


@dataclass(frozen=True)
class QueueInfo:
    name: str
    pending: int
    processing: int
    scheduled: int
    failed: int
    paused: bool
    serving: Serving | None = None  # read only when asked: see queue_infos
    limits: Limits = field(default_factory=Limits)
    parked: int = 0  # pending jobs parked at their group's cap (not in `pending`)
    waiting: int = 0  # jobs waiting for their parents (depends_on); counted toward capacity

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "pending": self.pending,
            "processing": self.processing,
            "scheduled": self.scheduled,
            "failed": self.failed,
            "paused": self.paused,
            "limits": self.limits.to_json(),
            "parked": self.parked,
            "waiting": self.waiting,
        }
        if self.serving is not None:
            body["workers"] = self.serving.workers
            body["unserved"] = self.pending > 0 and self.serving.workers == 0
            body["unhandled_types"] = list(self.serving.unhandled_types)
        return body


@dataclass(frozen=True)
class Serving:
    """Who serves a queue: live workers listing it, and the types used in it (the queue's
    types set) that none of them has a handler for."""

    workers: int
    unhandled_types: tuple[str, ...]


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    # The length of its processing list when read, not the heartbeat's figure: past
    # slots_total while the fetcher holds jobs claimed ahead of a free slot (the contract).
    slots_busy: int
    slots_total: int
    started_at: int | None
    last_heartbeat: int
    handlers: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobStore:
    def __init__(self, client: redis.Redis, settings: Settings, shard: str = "") -> None:
        self.redis = client
        self.settings = settings
        self.shard = shard  # this store's shard group (common/shards.py); "": the default
        self.keys = Keys(settings.namespace, shard)
        self._prefix = self.keys.prefix
        # Computed once: enqueue is the producer's hot path.
        self._enqueue_keys = self._script_keys("enqueue")
        self._own_keys: dict[tuple[str, str, str, tuple[str, ...]], list[str]] = {}
        self._configured = ",".join(settings.queues)
        self._enqueue_head = (
            self._prefix,
            settings.job_queue_capacity,
            int(settings.idempotency_ttl.total_seconds()),
            settings.max_queues,
            settings.max_types,
            self._configured,
        )
        self._default_timeout_ms = round(settings.job_timeout.total_seconds() * 1000)

    # -- submission -------------------------------------------------------------------------

    def enqueue(self, spec: JobSpec, job_id: str | None = None) -> EnqueueResult:
        return self.enqueue_many([spec], [job_id or spec.id or new_job_id()])[0]

    def enqueue_many(
        self,
        specs: Sequence[JobSpec],
        job_ids: Sequence[str] | None = None,
        *,
        batch: Sequence[Any] = (),
        remote_parents: Mapping[str, str] | None = None,
    ) -> list[EnqueueResult]:
        """All or nothing in one Lua call; capacity is checked for the whole batch. `batch`:
        the members join a batch in the same call (common/batches.py builds it; no jobs is
        then allowed, to create an empty open batch). `remote_parents`: parents named in
        depends_on that live in another shard, id -> shard (ShardedStore found them there);
        each child is linked to them by a hand-off (_deps.lua)."""
        if not (0 if batch else 1) <= len(specs) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} jobs")
        ids = list(job_ids) if job_ids is not None else [spec.id or new_job_id() for spec in specs]
        # Jobs of the call that depend on each other go parents first (common.deps); the
        # results come back in the order of `specs`.
        order = submission_order(ids, specs)
        args: list[Any] = [*self._enqueue_head, len(specs)]
        ttl_ms = round(self.settings.result_ttl.total_seconds() * 1000)
        for index in order:
            job_id, spec = ids[index], specs[index]
            args += [
                job_id,
                spec.type,
                spec.queue,
                spec.payload_json(),
                spec.max_attempts or self.settings.max_attempts,
                self._timeout_ms(spec),
                -1 if spec.delay is None else round(spec.delay * 1000),
                -1 if spec.run_at_ms is None else spec.run_at_ms,
                spec.idempotency_key or "",
                spec.fingerprint() if spec.idempotency_key else "",
                _options_json(spec, job_id == spec.id, ttl_ms),
            ]
            if remote_parents and spec.depends_on is not None:
                args[-1] = self._remote_options(spec.depends_on, remote_parents, args[-1])
            if spec.callback_url is not None:
                args[-1] = self._callback_options(spec, args[-1])
        args += batch
        reply = self._acknowledged("enqueue", self._enqueue_keys, args)
        if reply[0] != "ok":
            self._refused(reply, specs, order)
        now = int(reply[1])
        status = _STATUS_BY_VALUE
        results = [
            EnqueueResult(str(reply[i]), status[reply[i + 1]], reply[i + 2] == 1, now)
            for i in range(2, 2 + 3 * len(specs), 3)
        ]
        if order == list(range(len(specs))):
            return results
        placed: list[EnqueueResult] = list(results)
        for at, index in enumerate(order):
            placed[index] = results[at]
        return placed

    def _remote_options(
        self, parents: Sequence[str], remote: Mapping[str, str], options: str
    ) -> str:
        """enqueue.lua's options with r = the parents in other shards (id -> shard) and s =
        this store's shard (the child's, for the link's body)."""
        mine = {parent: remote[parent] for parent in parents if parent in remote}
        if not mine:
            return options
        merged: dict[str, Any] = json.loads(options)
        merged.update(r=mine, s=self.shard)
        return json.dumps(merged)

    def _callback_options(self, spec: JobSpec, options: str) -> str:
        """enqueue.lua's options with the callback (_callbacks.lua): cb = callback_url, ca = its
        attempts (CALLBACK_MAX_ATTEMPTS), ct = its timeout ms (CALLBACK_TIMEOUT)."""
        merged: dict[str, Any] = json.loads(options) if options else {}
        merged.update(
            cb=spec.callback_url,
            ca=self.settings.callback_max_attempts,
            ct=round(self.settings.callback_timeout.total_seconds() * 1000),
        )
        return json.dumps(merged)

    def _acknowledged(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A write a client is told about: with DURABILITY=replicated it also waits for
        REPLICA_ACKS replicas (NotReplicatedError when they do not confirm it in time)."""
        if self.settings.durability != "replicated":
            return scripts.call(self.redis, name, keys, args)
        timeout_ms = round(self.settings.replica_ack_timeout.total_seconds() * 1000)
        script = scripts.SCRIPTS[name]
        acks = self.settings.replica_acks
        reply = call_replicated(self.redis, script, keys, args, acks, timeout_ms)
        if name == "enqueue" and reply[0] == "ok" and 0 in reply[4::3]:  # a replayed key
            confirm_replicated(self.redis, f"{self._prefix}replicated", acks, timeout_ms)
        return reply

    def _script_keys(self, name: str, **params: str) -> list[str]:
        """KEYS for a script, as its header declares them (common.scripts.keys_for)."""
        return scripts.keys_for(scripts.SCRIPTS[name].keys, self.keys, **params)

    def _worker_keys(
        self, name: str, worker_id: str, queue: str = "", queues: Sequence[str] = ()
    ) -> list[str]:
        """The same, cached for a worker's hot path (claim, start, complete)."""
        key = (name, worker_id, queue, tuple(queues))
        cached = self._own_keys.get(key)
        if cached is None:
            if len(self._own_keys) > 64:  # a store serves one worker or a few: stay bounded
                self._own_keys.clear()
            spec = scripts.SCRIPTS[name].keys
            cached = scripts.keys_for(spec, self.keys, queues, worker_id=worker_id, queue=queue)
            self._own_keys[key] = cached
        return cached

    def _refused(self, reply: list[Any], specs: Sequence[JobSpec], order: list[int]) -> None:
        if reply[0] == "unknown_parents":
            raise DependencyError("unknown_parents", [str(i) for i in reply[2:]])
        if reply[0] == "too_many_dependents":
            raise DependencyError("too_many_dependents", [str(reply[2])])
        if reply[0] == "id_conflict":
            raise IdConflictError(order[int(reply[1]) - 1], str(reply[2]))
        if reply[0] in ("idempotency_conflict", "duplicate_job"):
            index = order[int(reply[1]) - 1]
            spec = specs[index]
            if reply[0] == "duplicate_job":
                assert spec.unique is not None
                raise DuplicateJobError(spec.unique.key, index, str(reply[2]))
            raise IdempotencyConflictError(spec.idempotency_key or "", index, str(reply[2]))
        if reply[0] in _BATCH_REFUSALS:
            raise _BATCH_REFUSALS[reply[0]](reply)
        if reply[0] == "queue_full":
            raise QueueFullError(str(reply[1]), self.settings.job_queue_capacity)
        if reply[0] == "too_many_queues":
            raise TooManyQueuesError(str(reply[1]), self.settings.max_queues)
        if reply[0] == "too_many_types":
            raise TooManyTypesError(str(reply[1]), str(reply[2]), self.settings.max_types)
        raise RuntimeError(f"enqueue answered {reply[0]!r}")

    def _timeout_ms(self, spec: JobSpec) -> int:
        return self._default_timeout_ms if spec.timeout is None else round(spec.timeout * 1000)

    def submit(self, spec: JobSpec) -> tuple[Job, bool]:
        """Enqueues one job and returns it with whether it was created; a new job is built
        from what was sent (no second round trip), a replayed idempotency key reads the
        original."""
        result = self.enqueue(spec)
        if not result.created:
            return self._require(result.job_id), False
        if spec.depends_on is not None:  # waiting, or cancelled by a parent: read it back
            return self._require(result.job_id), True
        now = result.created_at
        due = now + round(spec.delay * 1000) if spec.delay is not None else spec.run_at_ms
        scheduled = result.status is JobStatus.SCHEDULED
        job = Job(
            id=result.job_id,
            type=spec.type,
            queue=spec.queue,
            status=result.status,
            payload=spec.payload if spec.payload is not None else {},
            result=None,
            error=None,
            attempts=0,
            max_attempts=spec.max_attempts or self.settings.max_attempts,
            timeout_ms=self._timeout_ms(spec),
            created_at=now,
            enqueued_at=None if scheduled else now,
            run_at=due if scheduled else None,
            started_at=None,
            finished_at=None,
            worker=None,
            idempotency_key=spec.idempotency_key,
            history=[],
            unique_key=None if spec.unique is None else spec.unique.key,
            expires_at=(
                now + round(spec.expires_in * 1000)
                if spec.expires_in is not None
                else spec.expires_at_ms
            ),
            group=spec.group,
            priority=spec.priority,
            callback_url=spec.callback_url,
        )
        return job, True

    # -- the worker's side ------------------------------------------------------------------

    def claim(
        self, worker_id: str, count: int, queues: Sequence[str], *, idle: bool = True
    ) -> Claimed:
        """Moves and starts up to `count` jobs from `queues` (priority order) in one call.
        idle: the worker runs nothing, so a suspect job may start (alone, ending the claim);
        otherwise a suspect job at the head of a queue ends the claim without starting."""
        reply = scripts.call(
            self.redis,
            "claim",
            self._worker_keys("claim", worker_id, queues=queues),
            [self._prefix, worker_id, count, int(idle), *queues],
        )
        return _claimed(reply, self.settings.namespace)

    def take_blocking(self, worker_id: str, queue: str, timeout_s: float) -> str | None:
        """BLMOVE: waits without polling for one id; start() must follow."""
        source, target = self.keys.queue(queue), self.keys.processing(worker_id)
        # Redis takes decimal seconds; redis-py's stubs say int.
        job_id = self.redis.blmove(source, target, timeout_s, "RIGHT", "LEFT")  # type: ignore[arg-type]
        return None if job_id is None else str(job_id)

    def take_and_start(self, worker_id: str, queue: str, timeout_s: float) -> ClaimedJob | None:
        """take_blocking and start in one round trip: start is pipelined behind BLMOVE and
        starts the id BLMOVE moved. For a worker that runs nothing; None when nothing came
        within `timeout_s`, the job was cancelled meanwhile or a limit held it back."""
        claimed = self.take_and_start_limited(worker_id, queue, timeout_s)
        return claimed[0] if claimed else None

    def take_and_start_limited(self, worker_id: str, queue: str, timeout_s: float) -> Claimed:
        """take_and_start, saying in `wait_ms` how long the queue's limits hold jobs back."""
        reply = scripts.blmove_then(
            self.redis,
            self.keys.queue(queue),
            self.keys.processing(worker_id),
            timeout_s,
            "start",
            self._worker_keys("start", worker_id, queue),
            [self._prefix, worker_id, "", queue],
        )
        return _claimed(reply, self.settings.namespace)

    def start(self, worker_id: str, job_id: str, queue: str) -> ClaimedJob | None:
        reply = scripts.call(
            self.redis,
            "start",
            self._worker_keys("start", worker_id, queue),
            [self._prefix, worker_id, job_id, queue],
        )
        claimed = _claimed(reply, self.settings.namespace)
        return claimed[0] if claimed else None

    def complete(self, worker_id: str, job: ClaimedJob, result_json: str) -> None:
        (outcome,), _ = self.complete_many(worker_id, [(job, result_json)], 0, ())
        _finish_reply(job.id, [outcome])

    def complete_many(
        self,
        worker_id: str,
        results: Sequence[tuple[ClaimedJob, str]],
        claim: int,
        queues: Sequence[str],
        *,
        idle: bool = False,
    ) -> tuple[list[str], Claimed]:
        """Records results and claims up to `claim` next jobs, in one call (`idle`: see
        claim). Returns a code per result ("ok" | "cancelled" | "stale_lease" | "not_found";
        cancelled: a cancel was requested while it ran, so it ended cancelled) and the claimed
        jobs (with wait_ms, see Claimed): a lost lease does not raise here, so a job claimed in
        the same call is never dropped."""
        ttl_ms = round(self.settings.result_ttl.total_seconds() * 1000)
        args: list[Any] = [self._prefix, worker_id, ttl_ms, len(results)]
        for job, result_json in results:
            args += [job.id, job.lease, result_json]
        args += [claim, int(idle), *queues]
        keys = self._worker_keys("complete", worker_id, queues=queues)
        reply = scripts.call(self.redis, "complete", keys, args)
        codes = [str(code) for code in reply[: len(results)]]
        return codes, _claimed(reply[len(results) :], self.settings.namespace)

    def fail(
        self,
        worker_id: str,
        job: ClaimedJob,
        error: str,
        *,
        permanent: bool,
        traceback: str = "",
        outcome: str = "failed",
        retry_delay_ms: int | None = None,
    ) -> JobStatus:
        """Retries with backoff while attempts remain, else dead-letters. Returns the status.
        The attempt joins the job's history with its error and traceback (both bounded by the
        worker, see worker.execution) as `outcome` (failed | timed_out | cancelled), which the
        caller states: error text is the handler's or a consumer's and decides nothing.
        retry_delay_ms: the delay the attempt asked for its next (a Retry-After), used instead
        of the backoff, at most RETRY_AFTER_MAX."""
        delay = ""
        if retry_delay_ms is not None:
            most = round(self.settings.retry_after_max.total_seconds() * 1000)
            delay = str(max(0, min(int(retry_delay_ms), most)))
        reply = scripts.call(
            self.redis,
            "fail",
            self._script_keys("fail", job_id=job.id),
            [
                self._prefix,
                job.id,
                job.lease,
                error,
                1 if permanent else 0,
                *self._backoff_args(),
                self.settings.dead_letter_max,
                worker_id,
                traceback,
                outcome,
                round(self.settings.result_ttl.total_seconds() * 1000),
                delay,
            ],
        )
        _finish_reply(job.id, reply)
        return JobStatus(reply[1])

    def _backoff_args(self) -> list[Any]:
        base_ms = round(self.settings.retry_backoff.total_seconds() * 1000)
        cap_ms = round(self.settings.retry_backoff_max.total_seconds() * 1000)
        return [base_ms, cap_ms, random.random()]

    def heartbeat(
        self,
        worker_id: str,
        host: str,
        pid: int,
        queues: Sequence[str],
        total: int,
        busy: int,
        handlers: Sequence[str] = (),
    ) -> int:
        ttl_ms = round(self.settings.worker_ttl.total_seconds() * 3000)
        types = ",".join(sorted(handlers)[:MAX_HEARTBEAT_HANDLERS])
        args = [self._prefix, worker_id, ttl_ms, host, pid, ",".join(queues), total, busy, types]
        keys = self._script_keys("heartbeat", worker_id=worker_id)
        return int(scripts.call(self.redis, "heartbeat", keys, args))

    def release(self, worker_id: str, *, keep: Sequence[str] | None = None) -> int:
        """Requeues what the worker holds but no longer runs, without using an attempt.
        With keep=None (shutdown) that is everything, and the worker deregisters."""
        keys = self._script_keys("release", worker_id=worker_id)
        args = [self._prefix, worker_id, 1 if keep is None else 0, *(keep or ())]
        return int(scripts.call(self.redis, "release", keys, args))

    # -- scheduler and sweeper ---------------------------------------------------------------

    def promote(self, limit: int = 1000) -> tuple[int, int | None]:
        """Due scheduled jobs -> pending. Returns (promoted, next due time in ms or None)."""
        keys = self._script_keys("promote")
        reply = scripts.call(self.redis, "promote", keys, [self._prefix, limit])
        next_due = int(reply[1])
        return int(reply[0]), (None if next_due < 0 else next_due)

    def _liveness_cutoff_ms(self) -> int:
        # Heartbeats are scored with Redis server time, so compare with Redis server time too.
        return self.server_time_ms() - round(self.settings.worker_ttl.total_seconds() * 1000)

    def dead_workers(self) -> list[str]:
        cutoff = self._liveness_cutoff_ms()
        return [str(w) for w in self.redis.zrangebyscore(self.keys.workers, "-inf", f"({cutoff}")]

    def live_worker_count(self) -> int:
        return int(self.redis.zcount(self.keys.workers, self._liveness_cutoff_ms(), "+inf"))

    def recover(self, worker_id: str) -> tuple[int, int]:
        """Recovers a dead worker's list. Returns (requeued, failed)."""
        keys = self._script_keys("recover", worker_id=worker_id)
        ttl_ms = round(self.settings.result_ttl.total_seconds() * 1000)
        args = [self._prefix, worker_id, self.settings.dead_letter_max, ttl_ms]
        requeued, failed = scripts.call(self.redis, "recover", keys, args)
        return int(requeued), int(failed)

    def reclaim(self, margin_ms: int, limit: int = 100) -> int:
        args = [self._prefix, margin_ms, limit, *self._backoff_args()]
        args.append(self.settings.dead_letter_max)
        args.append(round(self.settings.result_ttl.total_seconds() * 1000))
        return int(scripts.call(self.redis, "reclaim", self._script_keys("reclaim"), args))

    def prune(self, limit: int = 1000) -> int:
        keys = self._script_keys("prune")
        return int(scripts.call(self.redis, "prune", keys, [self._prefix, limit]))

    def expire(self, limit: int = 100) -> int:
        """Cancels up to `limit` jobs whose expires_at passed before they started (expire.lua);
        returns the due entries handled (a full batch: call again)."""
        ttl_ms = round(self.settings.result_ttl.total_seconds() * 1000)
        keys = self._script_keys("expire")
        return int(scripts.call(self.redis, "expire", keys, [self._prefix, limit, ttl_ms]))

    def acquire_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        return bool(self.redis.set(key, token, nx=True, px=ttl_ms))

    # -- operator actions --------------------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        """Cancels a pending or scheduled job at once; a processing one is asked to stop (the
        returned job is still processing, with cancel_requested) and ends cancelled when its run
        does. A job that finished first is an InvalidTransitionError."""
        ttl_ms = round(self.settings.result_ttl.total_seconds() * 1000)
        self._transition("cancel", job_id, [self._prefix, job_id, ttl_ms])
        return self._require(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a cancel of the (processing) job was requested and its run has not ended."""
        return self.redis.hget(self.keys.job(job_id), "cancel_requested") == "1"

    def progress(self, job_id: str, lease: str, progress_json: str) -> bool | None:
        """record_progress on the store's connection."""
        return record_progress(self.redis, self.keys, job_id, lease, progress_json)

    def retry(self, job_id: str) -> Job:
        self._transition("retry", job_id, [self._prefix, job_id])
        return self._require(job_id)

    def delete(self, job_id: str) -> None:
        self._transition("delete", job_id, [self._prefix, job_id])

    def _transition(self, name: str, job_id: str, args: list[Any]) -> None:
        reply = self._acknowledged(name, self._script_keys(name, job_id=job_id), args)
        if reply[0] == "not_found":
            raise JobNotFoundError(job_id)
        if reply[0] == "invalid_transition":
            raise InvalidTransitionError(job_id, name, str(reply[1]))

    def _require(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def failed_ids(self, queue: str, limit: int) -> list[str]:
        return [str(i) for i in self.redis.zrange(self.keys.dead(queue), 0, limit - 1)]

    def retry_failed(self, queue: str, limit: int = MAX_BATCH) -> int:
        """Retries up to `limit` of a queue's failed jobs (bounded work per call)."""
        return self._each_failed(queue, "retry", limit)

    def purge_failed(self, queue: str, limit: int = MAX_BATCH) -> int:
        return self._each_failed(queue, "delete", limit)

    def _each_failed(self, queue: str, name: str, limit: int) -> int:
        ids = self.failed_ids(queue, limit)
        if not ids:
            return 0
        calls: list[scripts.ScriptCall] = [
            (name, self._script_keys(name, job_id=i), [self._prefix, i]) for i in ids
        ]
        return sum(1 for reply in scripts.call_many(self.redis, calls) if reply[0] == "ok")

    # -- queues: created by use, bounded by MAX_QUEUES, deleted when empty --------------------

    def queue_exists(self, queue: str) -> bool:
        """Configured (QUEUES) or in use: a job was submitted to it and it was not deleted."""
        return queue in self.settings.queues or bool(self.redis.sismember(self.keys.queues, queue))

    def require_queue(self, queue: str) -> None:
        if not self.queue_exists(queue):
            raise QueueNotFoundError(queue)

    def pause(self, queue: str) -> None:
        """Raises QueueNotFoundError for a queue that does not exist (and creates nothing)."""
        keys = self._script_keys("pause_queue")
        args = [self._prefix, queue, int(queue in self.settings.queues)]
        if not scripts.call(self.redis, "pause_queue", keys, args):
            raise QueueNotFoundError(queue)

    def resume(self, queue: str) -> None:
        self.require_queue(queue)
        self.redis.srem(self.keys.paused, queue)

    def delete_queue(self, queue: str) -> None:
        """Forgets an empty queue: name, paused flag, types, stats and in-flight fields.
        Raises QueueNotFoundError, or QueueNotEmptyError while it holds any job."""
        keys = self._script_keys("delete_queue", queue=queue)
        configured = int(queue in self.settings.queues)
        args = [self._prefix, queue, configured, ",".join(scripts.COUNTERS)]
        reply = scripts.call(self.redis, "delete_queue", keys, args)
        if reply[0] == "not_found":
            raise QueueNotFoundError(queue)
        if reply[0] == "not_empty":
            raise QueueNotEmptyError(queue, str(reply[1]))

    # -- reads -------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        data = cast(dict[str, str], self.redis.hgetall(self.keys.job(job_id)))
        return Job.from_hash(data) if data else None

    def get_jobs(self, job_ids: Iterable[str]) -> list[Job | None]:
        """For listings: every field but the history (up to 25 tracebacks a job)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self.keys.job(job_id), LISTED_FIELDS)
        jobs: list[Job | None] = []
        for values in pipe.execute():
            if values[0] is None:  # no id: the record is gone
                jobs.append(None)
                continue
            data = {name: v for name, v in zip(LISTED_FIELDS, values, strict=True) if v is not None}
            jobs.append(Job.from_hash(data, with_history=False))
        return jobs

    def get_status(self, job_id: str) -> JobStatus | None:
        value = self.redis.hget(self.keys.job(job_id), "status")
        return None if value is None else JobStatus(value)

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
        """Newest first. Reads at most `scan_budget` index entries per call whatever the number
        of jobs; a page can come back short with a cursor when filters match sparsely."""
        index = self.keys.status(status) if status else self.keys.jobs
        score, offset = _parse_cursor(cursor)
        jobs: list[Job] = []
        examined = 0
        while examined < scan_budget and len(jobs) < limit:
            chunk = min(max(limit * 2, 50), scan_budget - examined)
            found = self.redis.zrevrangebyscore(
                index, score, "-inf", start=offset, num=chunk, withscores=True
            )
            entries = cast(list[tuple[str, float]], found)
            if not entries:
                return JobPage(jobs, None)
            loaded = self.get_jobs([member for member, _ in entries])
            for job, (_, entry_score) in zip(loaded, entries, strict=True):
                examined += 1
                # The cursor is the score reached and how many entries at it were read, so a
                # batch sharing one millisecond pages correctly.
                if entry_score == score:
                    offset += 1
                else:
                    score, offset = entry_score, 1
                if _matches(job, status, queue, job_type):
                    jobs.append(cast(Job, job))
                    if len(jobs) == limit:
                        break
        return JobPage(jobs, f"{int(score)}-{offset}")

    def queue_names(self) -> list[str]:
        configured = set(self.settings.queues)
        return sorted(configured | {str(q) for q in self.redis.smembers(self.keys.queues)})

    def queue_info(self, name: str, *, serving: bool = False) -> QueueInfo:
        return self.queue_infos([name], serving=serving)[0]

    def queue_infos(
        self, names: Sequence[str] | None = None, *, serving: bool = False
    ) -> list[QueueInfo]:
        """Depths per queue; with `serving`, also who serves each (Serving), for the API. The
        types sets are bounded by MAX_TYPES in all, so this stays linear in the caps."""
        names = list(names) if names is not None else self.queue_names()
        workers = self.live_workers() if serving else []
        width = 11 if serving else 10
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.zcard(self.keys.awaiting(name))
            pipe.hmget(self.keys.limits(name), LIMIT_FIELDS)
            pipe.hget(self.keys.groups(name), PARKED_FIELD)
            pipe.lindex(self.keys.queue(name), -1)  # a WAKE there is no job (_lib.lua)
            pipe.zcard(self.keys.priority(name))  # pending with a priority
            pipe.llen(self.keys.queue(name))
            pipe.hget(self.keys.inflight, name)
            pipe.zcard(self.keys.scheduled(name))
            pipe.zcard(self.keys.dead(name))
            pipe.sismember(self.keys.paused, name)
            if serving:
                pipe.smembers(self.keys.types(name))
        values = pipe.execute()
        infos = []
        for i, name in enumerate(names):
            waiting, limits, parked, front, prioritized, *row = values[i * width : (i + 1) * width]
            listed = int(row[0]) - (1 if front == WAKE else 0)
            infos.append(
                QueueInfo(
                    name=name,
                    pending=listed + int(prioritized),
                    processing=max(int(row[1] or 0), 0),
                    scheduled=int(row[2]),
                    failed=int(row[3]),
                    paused=bool(row[4]),
                    serving=_serving(name, {str(t) for t in row[5]}, workers) if serving else None,
                    limits=Limits.from_hash(dict(zip(LIMIT_FIELDS, limits, strict=True))),
                    parked=int(parked or 0),
                    waiting=int(waiting),
                )
            )
        return infos

    # -- limits (common/limits.py): judged by the claim scripts ----------------------------

    def limits(self, queue: str) -> Limits:
        values = cast(list[str | None], self.redis.hmget(self.keys.limits(queue), LIMIT_FIELDS))
        return Limits.from_hash(dict(zip(LIMIT_FIELDS, values, strict=True)))

    def set_limits(self, queue: str, limits: Limits) -> None:
        """Replaces the queue's limits (none set: deletes them). The rate's state is kept, so
        putting the same rate again grants no fresh burst."""
        key = self.keys.limits(queue)
        stored = limits.to_hash()
        pipe = self.redis.pipeline(transaction=True)
        if not stored:
            pipe.delete(key)
        else:
            cleared = [f for f in (*LIMIT_FIELDS, "interval_ms") if f not in stored]
            if cleared:
                pipe.hdel(key, *cleared)
            pipe.hset(key, mapping=cast(dict[Any, Any], stored))
        pipe.execute()

    def paused_queues(self) -> set[str]:
        return {str(q) for q in self.redis.smembers(self.keys.paused)}

    def live_workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat is within WORKER_TTL (the dead await the sweeper)."""
        cutoff = self._liveness_cutoff_ms()
        ids = [str(w) for w in self.redis.zrangebyscore(self.keys.workers, cutoff, "+inf")]
        pipe = self.redis.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(self.keys.worker(worker_id))
            pipe.llen(self.keys.processing(worker_id))
        values = pipe.execute()
        infos = []
        for worker_id, data, held in zip(ids, values[::2], values[1::2], strict=True):
            if not data:
                continue
            infos.append(
                WorkerInfo(
                    id=worker_id,
                    host=data.get("host", ""),
                    pid=int(data.get("pid") or 0),
                    queues=tuple(q for q in data.get("queues", "").split(",") if q),
                    slots_busy=int(held),
                    slots_total=int(data.get("slots_total") or 0),
                    started_at=int(data["started_at"]) if data.get("started_at") else None,
                    last_heartbeat=int(data.get("last_heartbeat") or 0),
                    handlers=tuple(t for t in data.get("handlers", "").split(",") if t),
                )
            )
        return infos

    def stats(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.redis.hgetall(self.keys.stats).items()}

    def inflight(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.redis.hgetall(self.keys.inflight).items()}

    def server_time_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def ping(self) -> bool:
        return bool(self.redis.ping())


def _serving(queue: str, types: set[str], workers: Sequence[WorkerInfo]) -> Serving:
    serving = [w for w in workers if queue in w.queues]
    # An HTTP consumer (common.leases) declares no handlers: it runs whatever it leases.
    if any(w.id.startswith(HTTP_CONSUMER_PREFIX) for w in serving):
        return Serving(len(serving), ())
    handled = set().union(*(w.handlers for w in serving))
    return Serving(len(serving), tuple(sorted(types - handled)))


class Claimed(list[ClaimedJob]):
    """Jobs a claim started; wait_ms > 0 when a queue's limits (common/limits.py) held more
    back: claim again no sooner than that."""

    wait_ms: int = 0


def _claimed(reply: list[Any], namespace: str) -> Claimed:
    step = CLAIM_FIELDS
    claimed = Claimed()
    if len(reply) % step == 1:  # the scripts append the wait after the jobs
        claimed.wait_ms = int(reply[-1])
        reply = reply[:-1]
    claimed.extend(
        ClaimedJob.from_reply(reply[i : i + step], namespace) for i in range(0, len(reply), step)
    )
    return claimed


def record_progress(
    client: redis.Redis, keys: Keys, job_id: str, lease: str, progress_json: str
) -> bool | None:
    """Stores a running job's progress under its lease (progress.lua) on `client` (a handler's
    own connection). True when a cancel of the job was requested, None when the lease no longer
    holds (nothing written)."""
    script_keys = scripts.keys_for(scripts.SCRIPTS["progress"].keys, keys, job_id=job_id)
    reply = scripts.call(client, "progress", script_keys, [keys.prefix, lease, progress_json])
    if reply[0] != "ok":
        return None
    return int(reply[1]) == 1


# enqueue.lua's refusals of a batch's call (_batches.lua), by code.
_BATCH_REFUSALS: dict[str, Callable[[list[Any]], Exception]] = {
    "batch_not_found": lambda r: BatchNotFoundError(str(r[1])),
    "batch_sealed": lambda r: BatchSealedError(str(r[1]), str(r[2])),
    "batch_too_large": lambda r: BatchTooLargeError(str(r[1]), int(r[2])),
    "batch_conflict": lambda r: BatchConflictError(str(r[1])),
    "not_in_batch": lambda r: NotInBatchError(int(r[1]) - 1, str(r[2])),
}


def _finish_reply(job_id: str, reply: list[Any]) -> None:
    if reply[0] == "stale_lease":
        raise StaleLeaseError(job_id)
    if reply[0] == "not_found":
        raise JobNotFoundError(job_id)


def _matches(
    job: Job | None, status: JobStatus | None, queue: str | None, job_type: str | None
) -> bool:
    if job is None:
        return False  # expired between the index read and the job read
    if status is not None and job.status != status:
        return False
    if queue is not None and job.queue != queue:
        return False
    return job_type is None or job.type == job_type


def _parse_cursor(cursor: str | None) -> tuple[float, int]:
    """A cursor is "<score>-<entries read at that score>"; raises ValueError when malformed."""
    if not cursor:
        return float("inf"), 0
    score, _, offset = cursor.partition("-")
    if not (score.isdigit() and offset.isdigit()):
        raise ValueError("cursor is not one this API returned")
    return int(score), int(offset)


def _options_json(spec: JobSpec, client_id: bool, result_ttl_ms: int) -> str:
    """enqueue.lua's options field: '' for a job with no unique, expiry, group, priority, id of
    the client's (client_id) or depends_on (most)."""
    if (
        spec.unique is None
        and spec.expires_in is None
        and spec.expires_at_ms is None
        and spec.group is None
        and not spec.priority
        and not client_id
        and spec.depends_on is None
    ):
        return ""
    options: dict[str, Any] = {}
    if client_id:
        options.update(ci=1, fp=spec.fingerprint())
    if spec.depends_on is not None:
        options.update(d=list(spec.depends_on), rt=result_ttl_ms)
        if spec.on_parent_failure != "cancel":
            options["pf"] = spec.on_parent_failure
    if spec.priority:
        options["p"] = spec.priority
    if spec.group is not None:
        options["g"] = spec.group
    if spec.unique is not None:
        options.update(u=spec.unique.key, t=spec.unique.ttl_ms, n=spec.unique.until)
    if spec.expires_at_ms is not None:
        options["ea"] = spec.expires_at_ms
    if spec.expires_in is not None:
        options["ei"] = round(spec.expires_in * 1000)
    return json.dumps(options)
