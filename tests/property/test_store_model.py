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

Workflows run through the same machine: submissions with depends_on naming 1-3 jobs of the
model (on_parent_failure cancel or run), created waiting, or judged at once as enqueue.lua does
(pending when every parent has already ended and none failed it; cancelled when a parent
already failed or was cancelled and it says cancel); batches created sealed or open with an
on_complete and/or on_success callback and plain, delayed or dependent members, added to while
open (refused once sealed, writing nothing) and sealed. Every rule above moves these jobs too
(and a worker runs the next job to its end at once, an operator may cancel a job right after
retrying it, a reclaimed run may have been asked to stop), and a job's end (complete, fail,
cancel, reclaim, recover) settles its waiting children in the same call: released at their
last parent (run: any end counts), or cancelled parent_failed when it did not complete, their
own children following; a parent that did not complete keeps those children, and an operator
retry of it makes them (and theirs) wait again where every other parent allows. After every
step, besides the checks above: each waiting job is in the waiting index and its queue's
awaiting set and nowhere else, with the model's parents_left; each dependents set holds the
model's children (registered, or kept for a retry); no job left waiting before its last parent
ended (with cancel: completed), and a child a parent cancelled names that parent; each batch's
state, total, completed / failed / cancelled (a member counts once, at its first end) and live
counts by status equal the model's; each callback exists exactly once after its batch settled
(on_success only when every member completed) and never before; the cancelled counter counts
cascades. The jobs one call releases or creates at a queue's back come in Redis's own order (a
parent's children are a set): model_workflows.py takes that order for them only, and only
where all else is as modelled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import hypothesis.strategies as st
import pytest
import redis
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.property.harness import BACKENDS, ModelMachine, run_model
from tests.property.model_workflows import CALLBACKS, ModelBatch, settled_order
from workstream.common.batches import BatchStore, callback_spec
from workstream.common.errors import (
    BatchSealedError,
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
# The jobs one submission into a batch brings (create: maybe none; add: 1-3): see _draw_job.
MEMBERS = st.lists(st.sampled_from(["plain", "delayed", "child", "child"]), max_size=3)


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
    # Workflows: the parents it named (depends_on), what a failed or cancelled one does to it
    # (cancel | run), how many have not ended yet while it waits, and its batch.
    parents: tuple[str, ...] = ()
    on_parent_failure: str = "cancel"
    left: int = 0
    batch: str | None = None
    ended_once: bool = False  # it reached an end (an operator retry may bring it back)
    # How a child stopped waiting: released (at submission too), parent_failed (cancelled by
    # a parent, at submission too) or withdrawn (an operator cancelled it while it waited).
    settled: str = ""
    blamed: tuple[str, ...] = ()  # parent_failed: the parents that may have cancelled it


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
    # Parent -> its dependents set as the model sees it: the waiting children registered with
    # it until it ends; once it ended without completing, those a parent's failure cancelled.
    children: dict[str, list[str]] = field(default_factory=dict)
    batches: dict[str, ModelBatch] = field(default_factory=dict)
    gone: dict[str, JobStatus] = field(default_factory=dict)  # deleted jobs: their last status
    # Ids the last call pushed to the back in an order of Redis's own (model_workflows.py).
    loose: set[str] = field(default_factory=set)
    batches_settled: int = 0

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

    def judge(self, parents: tuple[str, ...], on_parent_failure: str) -> tuple[JobStatus, int]:
        """enqueue.lua at submission: a completed parent counts as ended; a failed or cancelled
        one cancels the job at once (on_parent_failure cancel) or counts as ended (run); any
        other is waited for. Returns the job's first status and its parents left."""
        left, failed = 0, False
        for parent in parents:
            status = self.jobs[parent].status
            if status in (S.FAILED, S.CANCELLED):
                failed = failed or on_parent_failure == "cancel"
            elif status != S.COMPLETED:
                left += 1
        if failed:
            return S.CANCELLED, 0
        return (S.WAITING, left) if left else (S.PENDING, 0)

    def submit(self, job: ModelJob) -> None:
        """A new job as enqueue.lua writes it (before any push): a child judged by its parents
        and registered with each not yet ended."""
        if job.parents:
            job.status, job.left = self.judge(job.parents, job.on_parent_failure)
            job.settled = {S.PENDING: "released", S.CANCELLED: "parent_failed"}.get(job.status, "")
        if job.status == S.WAITING:
            self.counts["waiting"] += 1
            for parent in job.parents:
                if self.jobs[parent].status not in TERMINAL:
                    self.children.setdefault(parent, []).append(job.id)
        elif job.status == S.CANCELLED:  # a parent had failed: counted as a cancel
            job.ended_once = True
            job.blamed = tuple(
                p for p in job.parents if self.jobs[p].status in (S.FAILED, S.CANCELLED)
            )
            for parent in job.blamed:  # each keeps it, for a retry to revive
                self.children.setdefault(parent, []).append(job.id)
            self.counts["cancelled"] += 1
            self.counts["cancelled at submission"] += 1
        self.jobs[job.id] = job
        self.counts["created"] += 1

    def finish(self, job: ModelJob) -> None:
        """_finish.lua on_finished, in the call that ended `job` (its status set already): its
        waiting children settle (one parent nearer release, released at the last; cancelled
        parent_failed when it did not complete and they said cancel, theirs following), then
        the batch of each job that ended counts it, once, and settles when that was the last.
        A parent that did not complete keeps the children a parent's failure cancelled (now or
        before) in its dependents set, for an operator retry to revive (see revive)."""
        ended, work = [job], [job]
        while work:
            parent = work.pop()
            parent.ended_once = True
            failed = parent.status != S.COMPLETED
            kept: list[str] = []
            for child_id in self.children.pop(parent.id, []):
                child = self.jobs.get(child_id)
                if child is None or child.status != S.WAITING:  # cancelled meanwhile: skipped
                    if failed and child is not None and child.settled == "parent_failed":
                        kept.append(child_id)
                    continue
                if failed and child.on_parent_failure == "cancel":
                    child.status, child.settled = S.CANCELLED, "parent_failed"
                    child.blamed = (parent.id,)
                    self.counts["cancelled"] += 1
                    self.counts["cascaded"] += 1
                    kept.append(child_id)
                    work.append(child)
                    ended.append(child)
                    continue
                child.left -= 1
                if child.left == 0:
                    child.status, child.settled = S.PENDING, "released"
                    self.push(child, front=False)
                    self.loose.add(child.id)
                    self.counts["released"] += 1
            if kept:
                self.children[parent.id] = kept
        for each in ended:
            self.count_in_batch(each)

    def revive(self, job: ModelJob) -> None:
        """_deps.lua revive_dependents, after an operator retried `job`: the children its
        failure cancelled, and theirs (found through the kept sets), judged parents first; one
        whose parents are all completed, live or revived waits again (parents_left: those not
        completed, registered with each), any other stays cancelled."""
        found: list[str] = []
        walk = [job.id]
        while walk:
            for child_id in self.children.get(walk.pop(0), []):
                child = self.jobs.get(child_id)
                if child_id in found or child is None:
                    continue
                if child.status == S.CANCELLED and child.settled == "parent_failed":
                    found.append(child_id)
                    walk.append(child_id)
        revived: set[str] = set()
        judged: set[str] = set()
        while len(judged) < len(found):
            child = next(
                self.jobs[c]
                for c in found
                if c not in judged and all(p in judged for p in self.jobs[c].parents if p in found)
            )
            judged.add(child.id)
            live = self._revivable(child, found, revived)
            if not live:
                continue
            left = len(live)
            child.status, child.left, child.settled, child.blamed = S.WAITING, left, "", ()
            for parent_id in live:
                registered = self.children.setdefault(parent_id, [])
                if child.id not in registered:
                    registered.append(child.id)
            revived.add(child.id)
            self.counts["revived"] += 1

    def _revivable(self, child: ModelJob, found: list[str], revived: set[str]) -> list[str]:
        """The parents a revived child waits for (none: it stays cancelled): a parent found
        with it counts as waiting if revived, else cancelled; a deleted one as failed."""
        live = []
        for parent_id in child.parents:
            if parent_id in found:
                status: JobStatus | None = S.WAITING if parent_id in revived else S.CANCELLED
            else:
                parent = self.jobs.get(parent_id)
                status = None if parent is None else parent.status
            if status in (S.FAILED, S.CANCELLED, None):
                return []
            if status != S.COMPLETED:
                live.append(parent_id)
        return live

    def count_in_batch(self, job: ModelJob) -> None:
        """_batches.lua settle_batch: a member's first ending counts; the last settles it."""
        batch = self.batches.get(job.batch or "")
        if batch is None or job.id in batch.counted:
            return
        batch.counted[job.id] = job.status
        self.settle_if_done(batch)

    def settle_if_done(self, batch: ModelBatch) -> None:
        """Settled in this call: its callbacks are created, pending at the back of their queue."""
        if not batch.settles():
            return
        batch.state = "settled"
        self.batches_settled += 1
        for which in batch.owed():
            job_id, queue = batch.callbacks[which]
            self.jobs[job_id] = callback = ModelJob(job_id, queue, S.PENDING, 1)
            self.push(callback, front=False)
            self.loose.add(job_id)
            batch.spawned.append(which)
            self.counts["created"] += 1

    def leave_processing(self, job: ModelJob, *, by_holder: bool) -> None:
        """by_holder: the holder finished the attempt itself; else its lease is now void."""
        if job.worker is not None:
            self.processing[job.worker].remove(job.id)
        if job.handle is not None:
            (self.finished if by_holder else self.stale).append(job.handle)
        job.worker, job.handle = None, None


class JobStoreMachine(ModelMachine):
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
        self.batch_store = BatchStore(self.store)
        self.model = Model()

    def teardown(self) -> None:
        for name in ("cascaded", "released", "revived", "waiting", "cancelled at submission"):
            self.totals[name] += self.model.counts[name]
        self.totals["batches settled"] += self.model.batches_settled
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

    def _next_id(self, ahead: int = 0) -> str:
        return f"{self.model.counts['created'] + ahead:032x}"

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

    # -- workflows: dependencies and batches -------------------------------------------------

    def _draw_job(self, data: st.DataObject, job_id: str, kind: str) -> tuple[JobSpec, ModelJob]:
        """A new job: plain (pending), delayed (scheduled) or a child of 1-3 jobs of the model
        (waiting, or judged at once: see Model.judge), in either queue, at any priority."""
        queue = data.draw(st.sampled_from(QUEUES), label="queue")
        priority = data.draw(st.sampled_from([0, 0, 1, 2]), label="priority")
        max_attempts = data.draw(st.integers(1, 3), label="max_attempts")
        parents: tuple[str, ...] = ()
        mode = "cancel"
        if kind == "child" and self.model.jobs:
            choices = st.sampled_from(sorted(self.model.jobs))
            parents = tuple(
                data.draw(st.lists(choices, min_size=1, max_size=3, unique=True), label="parents")
            )
            mode = data.draw(st.sampled_from(["cancel", "run"]), label="on_parent_failure")
        delayed = kind == "delayed"
        spec = JobSpec(
            type="t",
            queue=queue,
            max_attempts=max_attempts,
            delay=60.0 if delayed else None,
            priority=priority,
            id=job_id,
            depends_on=parents or None,
            on_parent_failure=mode,
        )
        status = S.SCHEDULED if delayed else S.PENDING
        job = ModelJob(job_id, queue, status, max_attempts, priority=priority)
        job.parents, job.on_parent_failure = parents, mode
        return spec, job

    def _submitted(self, jobs: list[ModelJob], batch: ModelBatch | None = None) -> None:
        """enqueue.lua's writes for one call's new jobs (in submission order): each child
        judged by its parents, registered with each not yet ended; the list pushes first, then
        the prioritized; then batch_record (members that ended at once are counted)."""
        for job in jobs:
            self.model.submit(job)
            self.totals["created"] += 1
        for prioritized in (False, True):
            for job in jobs:
                if job.status == S.PENDING and bool(job.priority) == prioritized:
                    self.model.push(job, front=False)
        if batch is None:
            return
        for job in jobs:
            job.batch = batch.id
            batch.members.append(job.id)
        for job in jobs:
            if job.status in TERMINAL:
                self.model.count_in_batch(job)

    def _new_jobs(
        self, data: st.DataObject, kinds: list[str]
    ) -> tuple[list[JobSpec], list[ModelJob]]:
        specs: list[JobSpec] = []
        jobs: list[ModelJob] = []
        for kind in kinds:
            spec, job = self._draw_job(data, self._next_id(len(jobs)), kind)
            specs.append(spec)
            jobs.append(job)
        return specs, jobs

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def enqueue_with_parents(self, data: st.DataObject) -> None:
        """depends_on 1-3 jobs of the model (any status: a job deleted since is no choice)."""
        spec, job = self._draw_job(data, self._next_id(), "child")
        result = self.store.enqueue(spec)
        self._submitted([job])
        assert (result.job_id, result.created) == (job.id, True)
        assert result.status == job.status, (job.id, result.status, job.status)

    @rule(
        data=st.data(),
        kinds=MEMBERS,
        sealed=st.booleans(),
        callbacks=st.sampled_from([("on_complete",), ("on_success",), CALLBACKS]),
    )
    def create_batch(
        self, data: st.DataObject, kinds: list[str], sealed: bool, callbacks: tuple[str, ...]
    ) -> None:
        sealed = sealed and bool(kinds)  # a sealed batch is created with members
        specs, jobs = self._new_jobs(data, kinds)
        batch_id = f"b{len(self.model.batches)}"
        queue = data.draw(st.sampled_from(QUEUES), label="callback queue")
        asked = {
            which: callback_spec(which, {"type": which, "queue": queue, "max_attempts": 1})
            for which in callbacks
        }
        _, results = self.batch_store.create(
            specs,
            sealed=sealed,
            on_complete=asked.get("on_complete"),
            on_success=asked.get("on_success"),
            batch_id=batch_id,
        )
        stored = self.batch_store.require(batch_id)
        chosen = {}
        for which in callbacks:
            info = getattr(stored, which)
            assert info is not None and info.queue == queue
            chosen[which] = (info.job_id, queue)
        batch = ModelBatch(batch_id, "sealed" if sealed else "open", chosen)
        self.model.batches[batch_id] = batch
        self._submitted(jobs, batch)
        assert [(r.job_id, r.status) for r in results] == [(j.id, j.status) for j in jobs]

    @precondition(lambda self: self.model.batches)
    @rule(data=st.data(), kinds=MEMBERS.filter(bool))
    def add_to_batch(self, data: st.DataObject, kinds: list[str]) -> None:
        batch = self.model.batches[data.draw(st.sampled_from(sorted(self.model.batches)))]
        specs, jobs = self._new_jobs(data, kinds)
        if batch.state != "open":
            before = self.client.dbsize()
            with pytest.raises(BatchSealedError):
                self.batch_store.add(batch.id, specs)
            assert self.client.dbsize() == before
            return
        results = self.batch_store.add(batch.id, specs)
        self._submitted(jobs, batch)
        assert [(r.job_id, r.status) for r in results] == [(j.id, j.status) for j in jobs]

    @precondition(lambda self: self.model.batches)
    @rule(data=st.data())
    def seal_batch(self, data: st.DataObject) -> None:
        batch = self.model.batches[data.draw(st.sampled_from(sorted(self.model.batches)))]
        sealed = self.batch_store.seal(batch.id)
        if batch.state == "open":  # sealing twice is sealing once
            batch.state = "sealed"
            self.model.settle_if_done(batch)
        assert sealed.state == batch.state

    # -- the worker's side -------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), count=st.integers(1, 3), idle=st.booleans())
    def claim(self, worker: str, count: int, idle: bool) -> None:
        expected = self._expected_claim(count, idle)
        claimed = self.store.claim(worker, count, QUEUES, idle=idle)
        assert [c.id for c in claimed] == expected
        for handle in claimed:
            self._started(worker, handle, moved=True)

    @rule(worker=st.sampled_from(WORKERS), outcome=st.sampled_from(["complete", "fail", "fail!"]))
    def run_the_next_job(self, worker: str, outcome: str) -> None:
        """Claim one job and end it at once, as most runs go: parents end, batches settle and
        retried members end again often enough to be seen within a short run."""
        expected = self._expected_claim(1, True)
        claimed = self.store.claim(worker, 1, QUEUES, idle=True)
        assert [c.id for c in claimed] == expected
        for handle in claimed:
            self._started(worker, handle, moved=True)
            job = self.model.jobs[handle.id]
            if outcome == "complete":
                self._complete(job)
            else:
                self._fail(job, permanent=outcome == "fail!")

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
        self._complete(data.draw(st.sampled_from(self.model.with_status(S.PROCESSING))))

    def _complete(self, job: ModelJob) -> None:
        assert job.handle is not None and job.worker is not None
        self.store.complete(job.worker, job.handle, '"done"')
        job.completed_by = job.handle
        outcome = S.CANCELLED if job.cancel_requested else S.COMPLETED
        job.history.append((job.attempts, outcome.value))
        self.model.leave_processing(job, by_holder=True)
        job.status = outcome
        self.model.counts[outcome.value] += 1
        self.model.finish(job)

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
        self._fail(job, permanent=permanent, timed_out=timed_out)

    def _fail(self, job: ModelJob, *, permanent: bool, timed_out: bool = False) -> None:
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
            self.model.finish(job)
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
            self.model.finish(job)
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
        if job.status not in (S.PENDING, S.SCHEDULED, S.WAITING):
            with pytest.raises(InvalidTransitionError):
                self.store.cancel(job.id)
            return
        self._cancel(job)

    def _cancel(self, job: ModelJob) -> None:
        assert self.store.cancel(job.id).status == S.CANCELLED
        if job.status == S.PENDING:  # a scheduled or waiting one leaves its set only
            self.model.remove_pending(job)
        if job.status == S.WAITING:
            job.settled = "withdrawn"
        job.status = S.CANCELLED  # a taken id stays in its worker's list until start drops it
        self.model.counts["cancelled"] += 1
        self.model.finish(job)

    @precondition(lambda self: self.model.with_status(S.FAILED))
    @rule(data=st.data(), then_cancel=st.booleans())
    def retry(self, data: st.DataObject, then_cancel: bool) -> None:
        """then_cancel: the operator changes their mind, so the job ends a second time (a
        batch counted it at its first end; its children were settled then)."""
        job = data.draw(st.sampled_from(self.model.with_status(S.FAILED)))
        assert self.store.retry(job.id).status == S.PENDING
        job.status, job.attempts, job.started = S.PENDING, 0, False
        self.model.push(job, front=False)
        self.model.revive(job)
        if then_cancel:
            self._cancel(job)

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
        self.model.gone[job.id] = job.status
        self.model.children.pop(job.id, None)  # its dependents set goes with it (purge)

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
    @rule(data=st.data(), asked_to_stop=st.booleans())
    def reclaim_overdue(self, data: st.DataObject, asked_to_stop: bool) -> None:
        """asked_to_stop: cancelled while it ran, and its handler never looked (it hung)."""
        job = data.draw(st.sampled_from(self.model.with_status(S.PROCESSING)))
        if asked_to_stop:
            assert self.store.cancel(job.id).cancel_requested
            job.cancel_requested = True
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
            self.model.finish(job)
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
                self.model.finish(job)
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
                self.model.finish(job)
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

    def _list(self, key: str) -> list[str]:
        return cast(list[str], self.client.lrange(key, 0, -1))

    def _zset(self, key: str) -> list[str]:
        return cast(list[str], self.client.zrange(key, 0, -1))

    def _processing_order(self, worker: str) -> list[str]:
        ids = self._list(self.keys.processing(worker))
        assert sorted(ids) == sorted(self.model.processing[worker])
        return list(ids)

    # -- invariants --------------------------------------------------------------------------

    def _places(self) -> dict[str, list[str]]:
        """Every list or set that holds each job id."""
        places: dict[str, list[str]] = {}
        for queue in QUEUES:
            for job_id in self._list(self.keys.queue(queue)):
                places.setdefault(job_id, []).append(f"queue:{queue}")
            for job_id in self._zset(self.keys.priority(queue)):
                places.setdefault(job_id, []).append(f"queue:{queue}")  # pending, prioritized
            for job_id in self._zset(self.keys.scheduled(queue)):
                places.setdefault(job_id, []).append(f"scheduled:{queue}")
            for job_id in self._zset(self.keys.dead(queue)):
                places.setdefault(job_id, []).append(f"dead:{queue}")
            for job_id in self._zset(self.keys.awaiting(queue)):
                places.setdefault(job_id, []).append(f"awaiting:{queue}")
        for worker in WORKERS:
            for job_id in self._list(self.keys.processing(worker)):
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
            elif job.status == S.WAITING:  # its parents' dependents sets: see the next check
                assert where == [f"awaiting:{job.queue}"]
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
        loose, self.model.loose = self.model.loose, set()
        for queue in QUEUES:
            stored = self._list(self.keys.queue(queue))
            self.model.queues[queue] = settled_order(self.model.queues[queue], stored, loose)
            stored = self._zset(self.keys.priority(queue))
            self.model.prio[queue] = settled_order(self.model.prio[queue], stored, loose)
            assert self._list(self.keys.queue(queue)) == self.model.queues[queue]
            assert self._zset(self.keys.priority(queue)) == self.model.prio[queue]
        for worker in WORKERS:  # the order inside a worker's own list is not a contract
            ids = self._list(self.keys.processing(worker))
            assert sorted(ids) == sorted(self.model.processing[worker]), worker

    @invariant()
    def wake_members_are_never_taken_for_jobs(self) -> None:
        """At most one WAKE per list, at its front; never a list empty while its ZSET holds a
        job (a blocked BLMOVE would miss it); the depth counts jobs, never the WAKE; the
        prioritized jobs hold their priority and are ordered by level, FIFO within one."""
        for queue in QUEUES:
            ids = self._list(self.keys.queue(queue))
            assert WAKE not in ids[:-1], ids
            levels = self._zset(self.keys.priority(queue))
            if ids or not levels:
                self.model.unwoken.discard(queue)
            assert not levels or ids or queue in self.model.unwoken, queue
            waiting = [i for i in ids if i != WAKE]
            assert self.store.queue_info(queue).pending == len(waiting) + len(levels)
            ranks = [self.model.level(i) for i in levels]
            assert ranks == sorted(ranks, reverse=True) and 0 not in ranks
            assert all(self.model.level(i) == 0 for i in waiting)

    @invariant()
    def waiting_jobs_count_the_parents_left_and_are_registered_with_each(self) -> None:
        for job in self.model.with_status(S.WAITING):
            stored = self.client.hmget(self.keys.job(job.id), ["parents_left", "on_parent_failure"])
            assert stored == [str(job.left), job.on_parent_failure], job.id
            assert job.left == sum(
                job.id in self.model.children.get(parent, []) for parent in job.parents
            )
            for parent in job.parents:
                registered = self.client.sismember(self.keys.dependents(parent), job.id)
                assert registered == (job.id in self.model.children.get(parent, [])), parent

    @invariant()
    def each_dependents_set_holds_the_models_children(self) -> None:
        """Registered children while a job has not ended; once it ended without completing,
        the children a parent's failure cancelled (kept for an operator retry to revive)."""
        jobs = list(self.model.jobs)
        pipe = self.client.pipeline(transaction=False)
        for job_id in jobs:
            pipe.smembers(self.keys.dependents(job_id))
        for job_id, members in zip(jobs, pipe.execute(), strict=True):
            assert members == set(self.model.children.get(job_id, [])), job_id

    @invariant()
    def no_job_left_waiting_before_its_last_parent_ended(self) -> None:
        """Released (or created pending): every parent ended, and with on_parent_failure
        cancel every parent completed; cancelled by a parent: one that did not complete."""
        for job in self.model.jobs.values():
            if job.settled in ("", "withdrawn"):  # no parents, still waiting, or withdrawn
                assert job.status == S.WAITING or not job.parents or job.settled, job.id
                continue
            if job.settled == "parent_failed":  # the parent then blamed: see Model.finish
                assert job.status == S.CANCELLED and job.on_parent_failure == "cancel", job.id
                error = cast(str | None, self.client.hget(self.keys.job(job.id), "error")) or ""
                assert error.removeprefix("parent_failed: ") in job.blamed, (job.id, error)
                continue
            ended = {p: self._ended_as(p) for p in job.parents}
            failed = [p for p, status in ended.items() if status not in (None, S.COMPLETED)]
            assert all(status is not None for status in ended.values()), (job.id, ended)
            if job.on_parent_failure == "cancel":
                assert not failed, (job.id, ended)

    def _ended_as(self, job_id: str) -> JobStatus | None:
        """How a parent ended: its status now if terminal; a live one that ended once (an
        operator retried it) counts as ended, and a deleted one ended as it was deleted."""
        job = self.model.jobs.get(job_id)
        if job is None:
            return self.model.gone[job_id]
        if job.status in TERMINAL:
            return job.status
        return S.FAILED if job.ended_once else None

    @invariant()
    def batches_count_their_members_and_settle_once(self) -> None:
        callbacks: list[str] = []
        for batch in self.model.batches.values():
            stored = self.batch_store.require(batch.id)
            assert stored.state == batch.state, batch.id
            assert stored.total == len(batch.members), batch.id
            outcomes = Counter(batch.counted.values())
            assert (stored.completed, stored.failed, stored.cancelled) == (
                outcomes[S.COMPLETED],
                outcomes[S.FAILED],
                outcomes[S.CANCELLED],
            ), batch.id
            now = [
                self.model.jobs[m].status if m in self.model.jobs else self.model.gone[m]
                for m in batch.members
            ]
            assert stored.statuses == batch.live(now), batch.id
            for which, (job_id, _) in batch.callbacks.items():
                info = getattr(stored, which)
                assert info is not None and info.job_id == job_id
                made = which in batch.spawned
                assert info.created is made, (batch.id, which)
                if made:
                    callbacks.append(job_id)
                else:  # never before the batch settles
                    assert not self.client.exists(self.keys.job(job_id)), (batch.id, which)
        # Each created once: the model holds each at most once, and Redis agrees (the other
        # invariants), or it was deleted since.
        assert len(callbacks) == len(set(callbacks))
        for job_id in callbacks:
            assert job_id in self.model.jobs or job_id in self.model.gone, job_id

    @invariant()
    def status_indexes_list_exactly_the_jobs_with_that_status(self) -> None:
        for status in JobStatus:
            indexed = set(self._zset(self.keys.status(status)))
            assert indexed == {j.id for j in self.model.with_status(status)}, status
        assert set(self._zset(self.keys.jobs)) == set(self.model.jobs)

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


@pytest.mark.timeout(900)  # the full size (--run-chaos) takes a few minutes per backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_store_transitions_keep_every_job_in_one_consistent_place(
    backend: str, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> None:
    """On fakeredis (its Lua runs on lupa) in every run; on a real redis-server too with
    --run-chaos (make chaos), full size on both, so a divergence between the two fails."""
    run_model(
        JobStoreMachine,
        backend=backend,
        scenario="model-based property test (Lua transitions, {backend})",
        fast=(80, 40),
        full=(300, 60),
        faults=lambda totals: (
            f"{totals['deaths']} worker deaths, {totals['late complete']} late completions, "
            f"{totals['late fail']} late failures (all rejected and counted); "
            f"{totals['waiting']} created waiting, {totals['released']} released, "
            f"{totals['cascaded']} cascaded cancels, {totals['revived']} revived, "
            f"{totals['batches settled']} batches settled"
        ),
        pytestconfig=pytestconfig,
        request=request,
    )
