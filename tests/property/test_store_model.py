"""A model of the job state machine, checked against the Lua scripts on fakeredis (every run) and
on a real redis-server (make chaos): a divergence between them is a failing test.

Hypothesis interleaves enqueue (immediate and delayed), claim, BLMOVE + start (separate and
pipelined), complete and fail (current and stale leases, and each sent again after a lost
reply; a late result after recover, reclaim or release is rejected and counted), cancel (of a
running job too: it is asked to stop, and its run then ends cancelled however it ends), retry,
promote, reclaim, worker death + recover, release and delete, and submissions with a unique
key (refused while the holder is live by its `until`) or an idempotency key (a replay answers
the original, another request is a conflict, neither writes). After every step each job must
be in exactly the one place its status names, the status indexes must list exactly the jobs
with that status, the in-flight gauge must equal the processing jobs per queue, the counters
must agree with what the model saw happen, and each job's attempt history must list the
attempts that ended (number and outcome), oldest first, bounded.

Jobs carry a priority (0-2 here): 0 waits in the queue's list, higher levels in its priority
ZSET, claimed first (highest level, FIFO within one; a job given back goes first in its level).
The model keeps the list as Redis does, WAKE members included, and the claim is modelled as
_claim.lua takes: after each step the ZSET holds exactly the modelled order, a list holds at
most one WAKE and only at its front, a list is never empty while its ZSET holds a job (so a
worker blocked in BLMOVE always wakes for one), and the queue's pending depth counts its jobs
and never a WAKE.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import fakeredis
import hypothesis.strategies as st
import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.faults.results import record
from tests.support.redis_server import RedisServer
from workstream.common.errors import (
    DuplicateJobError,
    IdempotencyConflictError,
    InvalidTransitionError,
    StaleLeaseError,
)
from workstream.common.jobs import HISTORY_MAX_ENTRIES, UNIQUE_UNTIL, ClaimedJob, JobSpec, Unique
from workstream.common.keys import WAKE, group_ref
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

S = JobStatus
QUEUES = ("high", "low")  # priority order for claims
WORKERS = ("w1", "w2", "w3")
TERMINAL = {S.COMPLETED, S.FAILED, S.CANCELLED}
# What the holder of an attempt someone else ended sends late: nothing, a result, a failure
# (retryable or, "fail!", permanent).
LATE_OUTCOMES = st.sampled_from([None, "complete", "fail", "fail!"])


@dataclass
class ModelJob:
    id: str
    queue: str
    status: JobStatus
    max_attempts: int
    attempts: int = 0
    handle: ClaimedJob | None = None  # the current lease holder's view while processing
    worker: str | None = None  # whose processing list holds it
    suspect: bool = False  # recovered from a dead worker: starts only alone, in an idle worker
    failed_by: ClaimedJob | None = None  # the holder whose own fail ended the latest attempt
    completed_by: ClaimedJob | None = None  # the holder whose complete made it completed
    history: list[tuple[int, str]] = field(default_factory=list)  # (attempt, outcome) ended
    # A cancel asked for while it ran. The run ends cancelled however it ends (its holder's
    # answer, recover, reclaim); a release gives the run back with the flag still set, and the
    # job's next run ends cancelled when it stops.
    cancel_requested: bool = False
    started: bool = False  # an attempt began (started_at is set; an operator retry clears it)
    group: str | None = None  # counted in its queue's groups hash while it runs
    priority: int = 0  # 0: the queue's list; 1-9: its priority ZSET


@dataclass
class Model:
    jobs: dict[str, ModelJob] = field(default_factory=dict)
    # Left end first, as LRANGE shows them: LPUSH adds on the left, workers take from the right.
    queues: dict[str, list[str]] = field(default_factory=lambda: {q: [] for q in QUEUES})
    # Claim order (first taken first) of each queue's prioritized jobs.
    prio: dict[str, list[str]] = field(default_factory=lambda: {q: [] for q in QUEUES})
    # Queues whose list a bare BLMOVE emptied with no start behind it yet (the fetcher always
    # pipelines start; after a lost reply release hands the id back, a WAKE to each queue its
    # worker serves that needs one, as the worker's hash names them).
    unwoken: set[str] = field(default_factory=set)
    processing: dict[str, list[str]] = field(default_factory=lambda: {w: [] for w in WORKERS})
    stale: list[ClaimedJob] = field(default_factory=list)  # attempts ended by someone else
    finished: list[ClaimedJob] = field(default_factory=list)  # attempts ended by their holder
    counts: Counter[str] = field(default_factory=Counter)
    locks: dict[str, tuple[str, str]] = field(default_factory=dict)  # unique key -> (id, until)
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)  # idempotency -> (id, payload)

    def holds(self, key: str) -> str | None:
        """The job holding a unique key, judged from the holder as enqueue.lua does."""
        if key not in self.locks:
            return None
        job_id, until = self.locks[key]
        job = self.jobs.get(job_id)
        if until == "ttl":
            return job_id
        if job is None:
            return None
        if until == "started":
            live = job.status in (S.PENDING, S.SCHEDULED) and not job.started
        else:
            live = job.status not in TERMINAL
        return job_id if live else None

    def push(self, job: ModelJob, *, front: bool) -> None:
        """Where a pending job goes (_lib.lua push_pending): the back of its level or list, or
        the front (given back)."""
        if job.priority:
            levels = self.prio[job.queue]
            if front:
                at = next((i for i, o in enumerate(levels) if self.level(o) <= job.priority), None)
            else:
                at = next((i for i, o in enumerate(levels) if self.level(o) < job.priority), None)
            levels.insert(len(levels) if at is None else at, job.id)
            if not self.queues[job.queue]:
                self.queues[job.queue].append(WAKE)
            return
        ids = self.queues[job.queue]
        if front:
            if ids and ids[-1] == WAKE:
                ids.pop()
            ids.append(job.id)
        else:
            ids.insert(0, job.id)

    def level(self, job_id: str) -> int:
        return self.jobs[job_id].priority

    def take(self, queue: str, want: int) -> list[str]:
        """_claim.lua take: the ZSET's first, then the list's right end (a WAKE too)."""
        levels, ids = self.prio[queue], self.queues[queue]
        taken = levels[:want]
        del levels[:want]
        if taken and not levels and ids and ids[-1] == WAKE:
            ids.pop()
        more = min(want - len(taken), len(ids))
        for _ in range(more):
            taken.append(ids.pop())
        return taken

    def remove_pending(self, job: ModelJob) -> None:
        """_lib.lua unqueue (cancel): an emptied list gets a WAKE while jobs of the ZSET wait."""
        levels, ids = self.prio[job.queue], self.queues[job.queue]
        if job.priority:
            if job.id in levels:
                levels.remove(job.id)
            return
        if job.id in ids:
            ids.remove(job.id)
        if not ids and levels:
            ids.append(WAKE)

    def with_status(self, *statuses: JobStatus) -> list[ModelJob]:
        return [j for j in self.jobs.values() if j.status in statuses]

    def taken_not_started(self) -> list[tuple[str, ModelJob]]:
        return [
            (w, self.jobs[i])
            for w, ids in self.processing.items()
            for i in ids
            if i in self.jobs and self.jobs[i].status != S.PROCESSING
        ]

    def rewake(self, queues: str | None) -> None:
        """_lib.lua rewake: a WAKE dropped from a worker's list goes back to each of its
        queues whose list is empty while prioritized jobs wait."""
        for queue in (queues or "").split(","):
            if queue and self.prio[queue] and not self.queues[queue]:
                self.queues[queue].append(WAKE)

    def put_back(self, ids: list[str]) -> None:
        """_claim.lua put_back: ids (as taken) back to the front, each where it belongs."""
        for job_id in reversed(ids):
            self.push(self.jobs[job_id], front=True)

    def leave_processing(self, job: ModelJob, *, by_holder: bool) -> None:
        """by_holder: the holder finished the attempt itself; else its lease is now void."""
        if job.worker is not None:
            self.processing[job.worker].remove(job.id)
        if job.handle is not None:
            (self.finished if by_holder else self.stale).append(job.handle)
        job.worker, job.handle = None, None


class FakeRedisServer:
    """fakeredis (with its Lua support, lupa) behind RedisServer's two members the model uses:
    one in-process server per run, every client a connection to it."""

    url = "redis://fakeredis.invalid/0"  # Settings wants a URL; the store gets clients directly

    def __init__(self) -> None:
        self._server = fakeredis.FakeServer()

    def client(self, **kwargs: object) -> redis.Redis:
        kwargs.pop("single_connection_client", None)  # one in-process server: no sockets
        return fakeredis.FakeRedis(server=self._server, decode_responses=True, **kwargs)  # type: ignore[arg-type]


class JobStoreMachine(RuleBasedStateMachine):
    server: RedisServer | FakeRedisServer  # set by the test before the machine runs
    totals: ClassVar[Counter[str]] = Counter()  # over every example, for the results table

    def __init__(self) -> None:
        super().__init__()
        self.client: redis.Redis = self.server.client()
        self.client.flushall()
        settings = Settings.from_environ(
            {
                "REDIS_URL": self.server.url,
                "RETRY_BACKOFF": "1h",  # a retry waits in scheduled until the test promotes it
                "RETRY_BACKOFF_MAX": "1h",
                "RESULT_TTL": "1h",
                "QUEUES": ",".join(QUEUES),
            }
        )
        self.store = JobStore(self.client, settings)
        # The fetcher's dedicated connection: take_and_start pipelines start behind BLMOVE.
        self.fetcher_client: redis.Redis = self.server.client(single_connection_client=True)
        self.fetcher_store = JobStore(self.fetcher_client, settings)
        self.keys = self.store.keys
        self.model = Model()

    def teardown(self) -> None:
        self.client.close()
        self.fetcher_client.close()

    @initialize()
    def nothing_yet(self) -> None:
        pass

    # -- submission --------------------------------------------------------------------------

    @rule(
        queue=st.sampled_from(QUEUES),
        delayed=st.booleans(),
        max_attempts=st.integers(1, 3),
        group=st.sampled_from([None, "a", "b"]),
        priority=st.sampled_from([0, 0, 1, 2]),
    )
    def enqueue(
        self, queue: str, delayed: bool, max_attempts: int, group: str | None, priority: int
    ) -> None:
        spec = JobSpec(
            type="t",
            queue=queue,
            max_attempts=max_attempts,
            delay=60.0 if delayed else None,
            group=group,
            priority=priority,
        )
        # Ids in creation order keep every run of an example identical (no os.urandom).
        result = self.store.enqueue(spec, job_id=f"{self.model.counts['created']:032x}")
        status = S.SCHEDULED if delayed else S.PENDING
        assert result.status == status and result.created
        job = ModelJob(result.job_id, queue, status, max_attempts, group=group, priority=priority)
        self.model.jobs[result.job_id] = job
        if not delayed:
            self.model.push(job, front=False)
        self.model.counts["created"] += 1
        self.totals["created"] += 1

    def _next_id(self) -> str:
        return f"{self.model.counts['created']:032x}"

    def _created(self, job_id: str, queue: str) -> None:
        self.model.jobs[job_id] = job = ModelJob(job_id, queue, S.PENDING, 1)
        self.model.push(job, front=False)
        self.model.counts["created"] += 1
        self.totals["created"] += 1

    @rule(
        queue=st.sampled_from(QUEUES),
        key=st.sampled_from(["u1", "u2"]),
        until=st.sampled_from(UNIQUE_UNTIL),
    )
    def enqueue_unique(self, queue: str, key: str, until: str) -> None:
        spec = JobSpec(type="t", queue=queue, max_attempts=1, unique=Unique(key, 3_600_000, until))
        holder = self.model.holds(key)
        if holder is not None:
            before = self.client.dbsize()
            with pytest.raises(DuplicateJobError) as refused:
                self.store.enqueue(spec, job_id=self._next_id())
            assert refused.value.job_id == holder and self.client.dbsize() == before
            self.totals["duplicates refused"] += 1
            return
        result = self.store.enqueue(spec, job_id=self._next_id())
        assert result.created
        self._created(result.job_id, queue)
        self.model.locks[key] = (result.job_id, until)

    @rule(
        queue=st.sampled_from(QUEUES), key=st.sampled_from(["i1", "i2"]), payload=st.integers(1, 2)
    )
    def enqueue_with_an_idempotency_key(self, queue: str, key: str, payload: int) -> None:
        spec = JobSpec(type="t", queue="high", payload=payload, max_attempts=1, idempotency_key=key)
        original = self.model.keys.get(key)
        if original is not None and original[0] in self.model.jobs:
            if original[1] != payload:
                with pytest.raises(IdempotencyConflictError) as refused:
                    self.store.enqueue(spec, job_id=self._next_id())
                assert refused.value.job_id == original[0]
                self.totals["idempotency conflicts"] += 1
                return
            replay = self.store.enqueue(spec, job_id=self._next_id())
            assert (replay.job_id, replay.created) == (original[0], False)
            self.totals["replays"] += 1
            return
        result = self.store.enqueue(spec, job_id=self._next_id())
        assert result.created
        self._created(result.job_id, "high")
        self.model.keys[key] = (result.job_id, payload)

    # -- the worker's side -------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), count=st.integers(1, 3), idle=st.booleans())
    def claim(self, worker: str, count: int, idle: bool) -> None:
        expected = self._expected_claim(count, idle)
        claimed = self.store.claim(worker, count, QUEUES, idle=idle)
        assert [c.id for c in claimed] == expected
        for handle in claimed:
            self._started(worker, handle, moved=True)

    def _expected_claim(self, count: int, idle: bool) -> list[str]:
        """Queues in order, each its highest level first, oldest first within a level, then its
        list, as _claim.lua takes them (in batches; a WAKE taken is dropped); a suspect job
        ends the claim, started (alone) only when the worker is idle and nothing else was
        taken, and what was taken behind it goes back to the front."""
        started: list[str] = []
        for queue in QUEUES:
            while len(started) < count:
                ids = self.model.take(queue, count - len(started))
                if not ids:
                    break
                for i, job_id in enumerate(ids):
                    if job_id == WAKE:
                        continue
                    job = self.model.jobs[job_id]
                    assert job.status == S.PENDING
                    if job.suspect and not (idle and not started):
                        self.model.put_back(ids[i:])
                        return started
                    started.append(job_id)
                    if job.suspect:
                        self.model.put_back(ids[i + 1 :])
                        return started
        return started

    @rule(worker=st.sampled_from(WORKERS), queue=st.sampled_from(QUEUES))
    def take_blocking(self, worker: str, queue: str) -> None:
        taken = self.store.take_blocking(worker, queue, 0.01)
        if not self.model.queues[queue]:
            assert taken is None
            return
        assert taken == self.model.queues[queue].pop()  # a WAKE too: BLMOVE reads the list
        if not self.model.queues[queue]:
            self.model.unwoken.add(queue)  # until start (or release) hands the id back
        self.model.processing[worker].insert(0, taken)

    @precondition(lambda self: self.model.taken_not_started())
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        worker, job = data.draw(st.sampled_from(self.model.taken_not_started()))
        handle = self.store.start(worker, job.id, job.queue)
        if self.model.prio[job.queue]:
            # A prioritized job waits: the id goes back to the front (if still pending) and
            # the best of the ZSET starts instead.
            self.model.processing[worker].remove(job.id)
            if job.status == S.PENDING:
                self.model.push(job, front=True)
            (first,) = self.model.take(job.queue, 1)
            assert handle is not None and handle.id == first
            self._started(worker, handle, moved=True)
            return
        if job.status != S.PENDING:  # cancelled while taken: dropped from the list
            assert handle is None
            self.model.processing[worker].remove(job.id)
            return
        assert handle is not None and handle.id == job.id
        self._started(worker, handle, moved=False)

    @rule(worker=st.sampled_from(WORKERS), queue=st.sampled_from(QUEUES))
    def take_and_start(self, worker: str, queue: str) -> None:
        if self.model.processing[worker]:
            return  # the fetcher blocks only when its worker holds nothing
        handle = self.fetcher_store.take_and_start(worker, queue, 0.01)
        ids = self.model.queues[queue]
        if not ids:  # BLMOVE moved nothing (the ZSET is then empty too: see the invariants)
            assert handle is None
            assert self.client.llen(self.keys.processing(worker)) == 0
            return
        moved = ids.pop()
        expected: str | None = moved
        if moved == WAKE or self.model.prio[queue]:
            # start.lua: the moved id back to the front (a WAKE only while more wait), then the
            # ZSET's best, or the list's next.
            if moved != WAKE:
                self.model.push(self.model.jobs[moved], front=True)
            elif self.model.prio[queue] and not ids:
                ids.append(WAKE)
            taken = self.model.take(queue, 1)
            expected = taken[0] if taken and taken[0] != WAKE else None
        if expected is None:
            assert handle is None
            assert self.client.llen(self.keys.processing(worker)) == 0
            return
        assert handle is not None and handle.id == expected
        self._started(worker, handle, moved=True)

    def _started(self, worker: str, handle: ClaimedJob, *, moved: bool) -> None:
        job = self.model.jobs[handle.id]
        assert job.status == S.PENDING
        assert handle.alone == job.suspect
        job.status, job.attempts, job.handle, job.worker, job.failed_by = (
            S.PROCESSING,
            job.attempts + 1,
            handle,
            worker,
            None,
        )
        assert handle.attempt == job.attempts
        job.started = True
        if moved:
            self.model.processing[worker].insert(0, job.id)

    @precondition(lambda self: self.model.with_status(S.PROCESSING))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.model.with_status(S.PROCESSING)))
        assert job.handle is not None and job.worker is not None
        self.store.complete(job.worker, job.handle, '"done"')
        job.completed_by = job.handle
        outcome = S.CANCELLED if job.cancel_requested else S.COMPLETED
        job.history.append((job.attempts, outcome.value))
        self.model.leave_processing(job, by_holder=True)
        job.status = outcome
        self.model.counts[outcome.value] += 1

    @precondition(lambda self: self.model.stale)
    @rule(data=st.data())
    def complete_with_a_stale_lease(self, data: st.DataObject) -> None:
        self._late_outcome(data.draw(st.sampled_from(self.model.stale)), "complete")

    def _late_outcome(self, handle: ClaimedJob, outcome: str | None) -> None:
        """The holder of a voided lease reports anyway: rejected, counted, nothing written."""
        if outcome is None or handle.id not in self.model.jobs:
            return  # deleted since; not_found is covered by the scripts' own tests
        before = self.client.hgetall(self.keys.job(handle.id))
        with pytest.raises(StaleLeaseError):
            if outcome == "complete":
                self.store.complete("stale-worker", handle, '"late"')
            else:
                self.store.fail("stale-worker", handle, "late", permanent=outcome == "fail!")
        after = self.client.hgetall(self.keys.job(handle.id))
        assert after == before, f"a late {outcome} must never be written"
        self.model.counts["stale_completions"] += 1
        self.totals[f"late {outcome.rstrip('!')}"] += 1

    @precondition(lambda self: self.model.finished)
    @rule(data=st.data())
    def complete_sent_again_after_a_lost_reply(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(self.model.finished))
        job = self.model.jobs.get(handle.id)
        # Only the attempt that completed it: after an operator retry, attempts start again
        # from 0, so an earlier attempt's handle can have the same attempt number.
        if job is None or not job.completed_by or job.completed_by is not handle:
            return
        before = self.client.hgetall(self.keys.job(handle.id))
        self.store.complete(job.worker or "w1", handle, '"again"')  # answered ok, changes nothing
        assert self.client.hgetall(self.keys.job(handle.id)) == before

    @precondition(lambda self: self.model.with_status(S.PROCESSING))
    @rule(data=st.data(), permanent=st.booleans(), timed_out=st.booleans())
    def fail(self, data: st.DataObject, permanent: bool, timed_out: bool) -> None:
        job = data.draw(st.sampled_from(self.model.with_status(S.PROCESSING)))
        assert job.handle is not None and job.worker is not None
        handle = job.handle
        error = "timed out after 1s" if timed_out else "boom"
        outcome = "timed_out" if timed_out else "failed"
        status = self.store.fail(
            job.worker,
            handle,
            error,
            permanent=permanent,
            traceback="Traceback ...",
            outcome=outcome,
        )
        job.history.append((job.attempts, "cancelled" if job.cancel_requested else outcome))
        self.model.leave_processing(job, by_holder=True)
        job.failed_by = handle
        if job.cancel_requested:  # whatever the error: asked to stop, it stopped
            assert status == S.CANCELLED
            job.status = S.CANCELLED
            self.model.counts["cancelled"] += 1
            return
        retries = not permanent and job.attempts < job.max_attempts
        assert status in ({S.SCHEDULED, S.PENDING} if retries else {S.FAILED})
        self._after_failed_attempt(job, status)

    @precondition(lambda self: self.model.stale)
    @rule(data=st.data(), permanent=st.booleans())
    def fail_with_a_stale_lease(self, data: st.DataObject, permanent: bool) -> None:
        """The late failure of an attempt the sweeper (recover, reclaim) or a release ended:
        rejected and counted exactly like a late completion."""
        handle = data.draw(st.sampled_from(self.model.stale))
        self._late_outcome(handle, "fail!" if permanent else "fail")

    @precondition(lambda self: any(j.failed_by for j in self.model.jobs.values()))
    @rule(data=st.data())
    def fail_sent_again_after_a_lost_reply(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from([j for j in self.model.jobs.values() if j.failed_by]))
        assert job.failed_by is not None
        before = self.client.hgetall(self.keys.job(job.id))
        status = self.store.fail("w1", job.failed_by, "again", permanent=False)
        assert status == job.status  # answered ok with where the job is now, changes nothing
        assert self.client.hgetall(self.keys.job(job.id)) == before

    def _after_failed_attempt(self, job: ModelJob, status: JobStatus) -> None:
        job.status = status
        if status == S.PENDING:
            self.model.push(job, front=False)
        if status == S.FAILED:
            self.model.counts["failed"] += 1
        else:
            self.model.counts["retried"] += 1

    # -- operators ---------------------------------------------------------------------------

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(list(self.model.jobs.values())))
        if job.status == S.PROCESSING:
            asked = self.store.cancel(job.id)
            assert asked.status == S.PROCESSING and asked.cancel_requested
            job.cancel_requested = True
            return
        if job.status not in (S.PENDING, S.SCHEDULED):
            with pytest.raises(InvalidTransitionError):
                self.store.cancel(job.id)
            return
        assert self.store.cancel(job.id).status == S.CANCELLED
        if job.status == S.PENDING:  # a scheduled one leaves its scheduled set only
            self.model.remove_pending(job)
        job.status = S.CANCELLED  # a taken id stays in its worker's list until start drops it
        self.model.counts["cancelled"] += 1

    @precondition(lambda self: self.model.with_status(S.FAILED))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.model.with_status(S.FAILED)))
        assert self.store.retry(job.id).status == S.PENDING
        job.status, job.attempts, job.started = S.PENDING, 0, False
        self.model.push(job, front=False)

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(list(self.model.jobs.values())))
        in_a_list = any(job.id in ids for ids in self.model.processing.values())
        if job.status not in TERMINAL or in_a_list:
            if job.status not in TERMINAL:
                with pytest.raises(InvalidTransitionError):
                    self.store.delete(job.id)
            return
        self.store.delete(job.id)
        del self.model.jobs[job.id]

    # -- time, scheduler and sweeper ---------------------------------------------------------

    @precondition(lambda self: self.model.with_status(S.SCHEDULED))
    @rule(data=st.data())
    def promote_when_due(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.model.with_status(S.SCHEDULED)))
        self.client.zadd(self.keys.scheduled(job.queue), {job.id: 0})  # its time has come
        promoted, _ = self.store.promote()
        assert promoted == 1
        job.status = S.PENDING
        self.model.push(job, front=False)

    @precondition(lambda self: self.model.with_status(S.PROCESSING))
    @rule(data=st.data())
    def reclaim_overdue(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.model.with_status(S.PROCESSING)))
        self.client.zadd(self.keys.deadlines, {job.id: 0})  # past its deadline
        handle = job.handle
        assert handle is not None and self.store.reclaim(margin_ms=0) == 1
        job.history.append((job.attempts, "lost"))
        self.model.leave_processing(job, by_holder=False)
        status = JobStatus(self.client.hget(self.keys.job(job.id), "status"))
        if job.cancel_requested:
            assert status == S.CANCELLED
            job.status = S.CANCELLED
            self.model.counts["cancelled"] += 1
        else:
            retries = job.attempts < job.max_attempts
            assert status in ({S.SCHEDULED, S.PENDING} if retries else {S.FAILED})
            self._after_failed_attempt(job, status)
        # The overdue holder reports right away (later reports: the stale-lease rules).
        self._late_outcome(handle, data.draw(LATE_OUTCOMES))

    @rule(worker=st.sampled_from(WORKERS), late=LATE_OUTCOMES)
    def worker_dies_and_is_recovered(self, worker: str, late: str | None) -> None:
        self.store.heartbeat(worker, "host", 1, QUEUES, 1, 0)
        self.client.zadd(self.keys.workers, {worker: 0})  # its heartbeat went stale
        assert worker in self.store.dead_workers()
        in_list_order = self._processing_order(worker)
        requeued, failed = self.store.recover(worker)
        self.totals["deaths"] += 1
        if WAKE in in_list_order:  # before any job goes back, as recover.lua reads the list
            self.model.rewake(",".join(QUEUES))  # the queues its heartbeat named
        jobs = [self.model.jobs[i] for i in in_list_order if i != WAKE]  # a WAKE: no job
        started = [job for job in jobs if job.status == S.PROCESSING]
        waiting = [job for job in jobs if job.status == S.PENDING]
        voided = [job.handle for job in started if job.handle is not None]
        expect_requeued = expect_failed = 0
        for job in started:  # ran alone: it used its attempt; side by side: it gets it back
            job.history.append((job.attempts, "lost"))
            self.model.leave_processing(job, by_holder=False)
            if len(started) > 1:
                job.attempts -= 1
            if job.cancel_requested:
                job.status = S.CANCELLED
                self.model.counts["cancelled"] += 1
                continue
            job.suspect = True
            if job.attempts < job.max_attempts:
                job.status = S.PENDING
                self.model.push(job, front=True)
                self.model.counts["recovered"] += 1
                expect_requeued += 1
            else:
                job.status = S.FAILED
                self.model.counts["failed"] += 1
                expect_failed += 1
        for job in waiting:
            self.model.push(job, front=True)
            expect_requeued += 1
        self.model.processing[worker] = []
        assert (requeued, failed) == (expect_requeued, expect_failed)
        assert worker not in self.store.dead_workers()
        for handle in voided:  # the presumed dead worker was only slow: its results come late
            self._late_outcome(handle, late)

    @rule(worker=st.sampled_from(WORKERS))
    def release_on_shutdown(self, worker: str) -> None:
        in_list_order = self._processing_order(worker)
        served = self.client.hget(self.keys.worker(worker), "queues")  # set by a heartbeat
        requeued = self.store.release(worker)
        expected = 0
        for job_id in in_list_order:
            if job_id == WAKE:
                self.model.rewake(str(served) if served else None)  # no job: dropped
                continue
            job = self.model.jobs[job_id]
            if job.status == S.PROCESSING:
                self.model.leave_processing(job, by_holder=False)
                job.attempts -= 1
            if job.status in (S.PROCESSING, S.PENDING):
                job.status = S.PENDING
                self.model.push(job, front=True)
                expected += 1
        self.model.processing[worker] = []
        assert requeued == expected

    def _processing_order(self, worker: str) -> list[str]:
        ids = self.client.lrange(self.keys.processing(worker), 0, -1)
        assert sorted(ids) == sorted(self.model.processing[worker])
        return list(ids)

    # -- invariants --------------------------------------------------------------------------

    def _places(self) -> dict[str, list[str]]:
        """Every list or set that holds each job id."""
        places: dict[str, list[str]] = {}
        for queue in QUEUES:
            for job_id in self.client.lrange(self.keys.queue(queue), 0, -1):
                places.setdefault(job_id, []).append(f"queue:{queue}")
            for job_id in self.client.zrange(self.keys.priority(queue), 0, -1):
                places.setdefault(job_id, []).append(f"queue:{queue}")  # pending, prioritized
            for job_id in self.client.zrange(self.keys.scheduled(queue), 0, -1):
                places.setdefault(job_id, []).append(f"scheduled:{queue}")
            for job_id in self.client.zrange(self.keys.dead(queue), 0, -1):
                places.setdefault(job_id, []).append(f"dead:{queue}")
        for worker in WORKERS:
            for job_id in self.client.lrange(self.keys.processing(worker), 0, -1):
                places.setdefault(job_id, []).append(f"processing:{worker}")
        places.pop(WAKE, None)  # no job (wake_members_are_never_taken_for_jobs checks it)
        return places

    @invariant()
    def unique_locks_name_their_holder_and_always_expire(self) -> None:
        for key, (job_id, until) in self.model.locks.items():
            lock = self.keys.unique(key)
            assert self.client.get(lock) == f"{job_id}:{until}"
            assert 0 < self.client.pttl(lock) <= 3_600_000

    @invariant()
    def each_job_is_in_exactly_the_place_its_status_names(self) -> None:
        places = self._places()
        assert set(places) <= set(self.model.jobs), "a list holds an unknown job"
        for job in self.model.jobs.values():
            status = self.client.hget(self.keys.job(job.id), "status")
            assert status == job.status.value, (job.id, status, job.status)
            where = places.get(job.id, [])
            if job.status == S.PENDING:
                assert where in ([f"queue:{job.queue}"], *([f"processing:{w}"] for w in WORKERS))
            elif job.status == S.PROCESSING:
                assert where == [f"processing:{job.worker}"]
                attempts = self.client.hget(self.keys.job(job.id), "attempts")
                assert attempts == str(job.attempts)
            elif job.status == S.SCHEDULED:
                assert where == [f"scheduled:{job.queue}"]
            elif job.status == S.FAILED:
                assert where == [f"dead:{job.queue}"]
            elif job.status == S.CANCELLED:  # a taken id waits in its list for start to drop it
                assert where in ([], *([f"processing:{w}"] for w in WORKERS))
            else:
                assert where == []

    @invariant()
    def cancel_requests_are_recorded_on_the_job(self) -> None:
        for job in self.model.jobs.values():
            flag = self.client.hget(self.keys.job(job.id), "cancel_requested")
            assert (flag == "1") == job.cancel_requested, job.id

    @invariant()
    def lists_hold_the_modelled_order(self) -> None:
        for queue in QUEUES:
            assert self.client.lrange(self.keys.queue(queue), 0, -1) == self.model.queues[queue]
            assert self.client.zrange(self.keys.priority(queue), 0, -1) == self.model.prio[queue]
        for worker in WORKERS:  # the order inside a worker's own list is not a contract
            ids = self.client.lrange(self.keys.processing(worker), 0, -1)
            assert sorted(ids) == sorted(self.model.processing[worker]), worker

    @invariant()
    def wake_members_are_never_taken_for_jobs(self) -> None:
        """At most one WAKE per list, at its front; never a list empty while its ZSET holds a
        job (a blocked BLMOVE would miss it); the depth counts jobs, never the WAKE; the
        prioritized jobs hold their priority and are ordered by level, FIFO within one."""
        for queue in QUEUES:
            ids = self.client.lrange(self.keys.queue(queue), 0, -1)
            assert WAKE not in ids[:-1], ids
            levels = self.client.zrange(self.keys.priority(queue), 0, -1)
            if ids or not levels:
                self.model.unwoken.discard(queue)
            assert not levels or ids or queue in self.model.unwoken, queue
            waiting = [i for i in ids if i != WAKE]
            assert self.store.queue_info(queue).pending == len(waiting) + len(levels)
            ranks = [self.model.level(i) for i in levels]
            assert ranks == sorted(ranks, reverse=True) and 0 not in ranks
            assert all(self.model.level(i) == 0 for i in waiting)

    @invariant()
    def status_indexes_list_exactly_the_jobs_with_that_status(self) -> None:
        for status in JobStatus:
            indexed = set(self.client.zrange(self.keys.status(status), 0, -1))
            assert indexed == {j.id for j in self.model.with_status(status)}, status
        assert set(self.client.zrange(self.keys.jobs, 0, -1)) == set(self.model.jobs)

    @invariant()
    def group_counts_are_the_processing_jobs_of_each_group(self) -> None:
        # No group cap is set here, so nothing is parked and claims are as modelled; what this
        # checks is that every way out of processing (complete, fail, cancel, recover, reclaim,
        # release) gives a group's slot back (release_group), never leaking or double-freeing.
        for queue in QUEUES:
            running = Counter(
                j.group for j in self.model.with_status(S.PROCESSING) if j.queue == queue
            )
            running.pop(None, None)
            counted = {g: int(n) for g, n in self.client.hgetall(self.keys.groups(queue)).items()}
            assert counted == dict(running), queue
            for group in ("a", "b"):
                assert self.client.llen(self.keys.waiting(group_ref(queue, group))) == 0

    @invariant()
    def inflight_gauge_counts_processing_jobs_per_queue(self) -> None:
        processing = Counter(j.queue for j in self.model.with_status(S.PROCESSING))
        inflight = self.store.inflight()
        for queue in QUEUES:
            assert inflight.get(queue, 0) == processing[queue], queue

    @invariant()
    def history_lists_each_ended_attempt_oldest_first(self) -> None:
        for job in self.model.jobs.values():
            stored = self.store.get_job(job.id)
            assert stored is not None and stored.history is not None
            seen = [(entry["attempt"], entry["outcome"]) for entry in stored.history]
            assert seen == job.history[-HISTORY_MAX_ENTRIES:], job.id

    @invariant()
    def counters_agree_with_what_happened(self) -> None:
        totals: Counter[str] = Counter()
        for key, value in self.store.stats().items():
            name = key.split("|")[0]
            if name in {"created", "completed", "failed", "retried", "recovered", "cancelled"}:
                totals[name] += value
            elif name == "stale_completions":
                totals[name] = value
        for name in ("created", "completed", "failed", "retried", "recovered", "cancelled"):
            assert totals[name] == self.model.counts[name], name
        assert totals["stale_completions"] == self.model.counts["stale_completions"]


BACKENDS = ("fakeredis", "redis-server")


@pytest.mark.timeout(900)  # the full size (--run-chaos) takes a few minutes per backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_store_transitions_keep_every_job_in_one_consistent_place(
    backend: str, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> None:
    """On fakeredis (its Lua runs on lupa) in every run; on a real redis-server too with
    --run-chaos (make chaos), full size on both, so a divergence between the two fails."""
    chaos = bool(pytestconfig.getoption("--run-chaos"))
    if backend == "redis-server" and not chaos:
        pytest.skip("the real-server run is part of make chaos (--run-chaos)")
    examples, steps = (300, 60) if chaos else (50, 40)
    JobStoreMachine.server = (
        FakeRedisServer() if backend == "fakeredis" else request.getfixturevalue("redis_server")
    )
    JobStoreMachine.totals = Counter()
    clock = time.monotonic()
    passed = False
    try:
        run_state_machine_as_test(
            JobStoreMachine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                derandomize=not chaos,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                database=None,
            ),
        )
        passed = True
    finally:
        totals = JobStoreMachine.totals
        record(
            f"model-based property test (Lua transitions, {backend})",
            "full" if chaos else "fast",
            jobs=totals["created"],
            faults=(
                f"{totals['deaths']} worker deaths, {totals['late complete']} late completions, "
                f"{totals['late fail']} late failures (all rejected and counted)"
            ),
            lost=0 if passed else 1,
            duplicates=None,
            wall_s=time.monotonic() - clock,
            passed=passed,
            notes=f"{examples} examples x up to {steps} steps, invariants checked after each",
        )
