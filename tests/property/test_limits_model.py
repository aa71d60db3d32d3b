"""A model of what issue 20's limits and expiry promise, checked against the Lua scripts on
fakeredis (every run) and on a real redis-server (make chaos).

Hypothesis interleaves submissions (grouped or not; some with an expires_at already past, some
with one far ahead) into three queues, one with a concurrency cap and a group cap that change as
the run goes on, one with a rate of 1/h, one with no limits, with claims, BLMOVE + start,
completions, failures, cancels, shutdown releases, expiry sweeps and a drain that lifts every
limit. test_store_model.py models the exact order of every claim with no cap set (and unique
keys and idempotency); this one cannot predict which job a limited claim starts, so it checks
the limits' rules instead, after every step:

- a claim never takes a queue's processing jobs above its concurrency cap, nor a group's above
  the group cap (a cap lowered below what runs is never exceeded further);
- the rate of 1/h lets at most one job start until its limits are set again;
- a parked job (its group at the cap) waits in its group's list, pending, in exactly one place,
  neither failed nor charged an attempt; the queue's parked count is what those lists hold;
- the in-flight gauge and the group counts are exactly the processing jobs;
- a job whose expires_at passed before it started is never started: it ends cancelled with
  error "expired" (by the claim that meets it or the sweep), with no attempt;
- once every limit is lifted and the workers drain, no job is left pending or parked.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

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
from workstream.common.errors import InvalidTransitionError
from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.keys import group_ref
from workstream.common.limits import PARKED_FIELD, Limits
from workstream.common.settings import Settings
from workstream.common.store import JobStore

CAPPED, RATED, FREE = "capped", "rated", "free"
QUEUES = (CAPPED, RATED, FREE)  # claim order
GROUPS = ("a", "b")
WORKERS = ("w1", "w2")
RATE = "1/h"  # one start, then nothing for an hour: any second start in a run breaks it
PAST, AHEAD = "past", "ahead"
DRAIN_ROUNDS = 50


@dataclass
class ModelJob:
    id: str
    queue: str
    group: str | None
    expires: str | None  # PAST: expired before any claim could meet it; AHEAD: an hour away
    attempts: int = 0  # attempts the model saw begin (claims, starts), less those released
    handle: ClaimedJob | None = None  # while the model holds it processing
    worker: str | None = None


@dataclass
class Model:
    jobs: dict[str, ModelJob] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # ended failed by the model's own fail
    caps: tuple[int | None, int | None] = (None, None)  # CAPPED's concurrency, group cap
    rated_starts: int = 0  # jobs of RATED started since its rate was last set afresh
    steps_since_drain: int = 0

    def running(self) -> list[ModelJob]:
        return [j for j in self.jobs.values() if j.handle is not None]


@dataclass
class Snapshot:
    """What the invariants read from Redis after a step."""

    jobs: dict[str, dict[str, str]]
    processing: dict[str, list[str]] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, dict[str, str]] = field(default_factory=dict)
    waiting: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    inflight: dict[str, int] = field(default_factory=dict)


class LimitsMachine(ModelMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client: redis.Redis = self.server.client()
        self.client.flushall()
        settings = Settings.from_environ(
            {
                "REDIS_URL": self.server.url,
                "RETRY_BACKOFF": "1h",  # a retried job waits in scheduled for the rest of a run
                "RETRY_BACKOFF_MAX": "1h",
                "RESULT_TTL": "1h",
                "QUEUES": ",".join(QUEUES),
            }
        )
        self.store = JobStore(self.client, settings)
        self.keys = self.store.keys
        self.model = Model()
        self._seen: Snapshot | None = None

    def teardown(self) -> None:
        self.client.close()

    @initialize(
        concurrency=st.integers(1, 3),
        group_cap=st.sampled_from([None, 1, 2]),
        backlog=st.lists(st.sampled_from([None, *GROUPS]), min_size=3, max_size=8),
        rated=st.integers(0, 3),
    )
    def limits_and_a_backlog(
        self, concurrency: int, group_cap: int | None, backlog: list[str | None], rated: int
    ) -> None:
        """The limits, and jobs already waiting for them: grouped ones in CAPPED (so caps and
        parking are met early in every example), a few in RATED."""
        self._set_caps(concurrency, group_cap)
        self.store.set_limits(RATED, Limits(rate=RATE))
        self.model.rated_starts = 0
        for group in backlog:
            self._enqueue(CAPPED, group, None, 2)
        for _ in range(rated):
            self._enqueue(RATED, None, None, 1)

    def _set_caps(self, concurrency: int | None, group_cap: int | None) -> None:
        self.store.set_limits(CAPPED, Limits(concurrency=concurrency, group_concurrency=group_cap))
        self.model.caps = (concurrency, group_cap)

    # -- submission --------------------------------------------------------------------------

    @rule(
        jobs=st.lists(
            st.tuples(
                st.sampled_from(QUEUES),
                st.sampled_from([None, *GROUPS]),
                st.sampled_from([None, None, None, PAST, AHEAD]),
                st.integers(1, 2),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def enqueue(self, jobs: list[tuple[str, str | None, str | None, int]]) -> None:
        """A few jobs (queue, group, expiry, max_attempts) one after another."""
        for queue, group, expires, max_attempts in jobs:
            self._enqueue(queue, group, expires, max_attempts)

    def _enqueue(
        self, queue: str, group: str | None, expires: str | None, max_attempts: int
    ) -> None:
        spec = JobSpec(
            type="t",
            queue=queue,
            group=group,
            max_attempts=max_attempts,
            expires_in={None: None, PAST: 0.001, AHEAD: 3600.0}[expires],
        )
        job_id = f"{len(self.model.jobs):032x}"
        assert self.store.enqueue(spec, job_id=job_id).created
        self.model.jobs[job_id] = ModelJob(job_id, queue, group, expires)
        self.totals["created"] += 1
        if expires == PAST:  # 1 ms: wait (bounded) until Redis's clock is past it
            deadline = int(self.client.hget(self.keys.job(job_id), "expires_at") or 0)
            for _ in range(100):
                if self.store.server_time_ms() > deadline:
                    break
                time.sleep(0.001)
            assert self.store.server_time_ms() > deadline

    # -- the worker's side -------------------------------------------------------------------

    def _processing(self) -> tuple[Counter[str], Counter[tuple[str, str]]]:
        per_queue: Counter[str] = Counter()
        per_group: Counter[tuple[str, str]] = Counter()
        for job in self.model.running():
            per_queue[job.queue] += 1
            if job.group is not None:
                per_group[(job.queue, job.group)] += 1
        return per_queue, per_group

    def _check_caps_after_starting(
        self, before: tuple[Counter[str], Counter[tuple[str, str]]]
    ) -> None:
        """What a claim started keeps CAPPED within its caps, or, where a cap was lowered
        below what already ran, adds nothing there."""
        (queues_before, groups_before), (queues_now, groups_now) = before, self._processing()
        cap, group_cap = self.model.caps
        if cap is not None and queues_now[CAPPED] > queues_before[CAPPED]:
            assert queues_now[CAPPED] <= cap, (queues_now[CAPPED], cap)
        if group_cap is not None:
            for group in GROUPS:
                now, then = groups_now[(CAPPED, group)], groups_before[(CAPPED, group)]
                if now > then:
                    assert now <= group_cap, (group, now, group_cap)

    def _started(self, worker: str, handles: list[ClaimedJob], met_at_ms: int) -> None:
        for handle in handles:
            job = self.model.jobs[handle.id]
            assert job.handle is None, f"{job.id} started twice"
            assert job.expires != PAST, f"{job.id} started after its expires_at ({met_at_ms})"
            job.attempts += 1
            assert handle.attempt == job.attempts, (job.id, handle.attempt, job.attempts)
            job.handle, job.worker = handle, worker
            if job.queue == RATED:
                self.model.rated_starts += 1
            self.totals["started"] += 1

    @rule(worker=st.sampled_from(WORKERS), count=st.integers(1, 4))
    def claim(self, worker: str, count: int) -> None:
        before = self._processing()
        now = self.store.server_time_ms()
        claimed = self.store.claim(worker, count, QUEUES)
        self._started(worker, list(claimed), now)
        self._check_caps_after_starting(before)
        if claimed.wait_ms:
            self.totals["claims held back"] += 1

    @rule(worker=st.sampled_from(WORKERS), queue=st.sampled_from(QUEUES))
    def take_and_start(self, worker: str, queue: str) -> None:
        """The fetcher's path (BLMOVE, then start.lua judges the limits)."""
        if any(j.worker == worker for j in self.model.running()):
            return  # the fetcher blocks only when its worker runs nothing
        before = self._processing()
        now = self.store.server_time_ms()
        claimed = self.store.take_and_start_limited(worker, queue, 0.01)
        self._started(worker, list(claimed), now)
        self._check_caps_after_starting(before)

    def _pick_running(self, data: st.DataObject) -> ModelJob:
        return data.draw(st.sampled_from(sorted(self.model.running(), key=lambda j: j.id)))

    @precondition(lambda self: self.model.running())
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job = self._pick_running(data)
        assert job.handle is not None and job.worker is not None
        self.store.complete(job.worker, job.handle, '"ok"')
        job.handle = job.worker = None

    @precondition(lambda self: self.model.running())
    @rule(data=st.data(), permanent=st.booleans())
    def fail(self, data: st.DataObject, permanent: bool) -> None:
        job = self._pick_running(data)
        assert job.handle is not None and job.worker is not None
        status = self.store.fail(job.worker, job.handle, "boom", permanent=permanent)
        job.handle = job.worker = None
        if status.value == "failed":
            self.model.failed.add(job.id)

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model.jobs)))
        try:
            self.store.cancel(job_id)
        except InvalidTransitionError:
            pass  # finished already
        self.totals["cancels"] += 1

    @rule(worker=st.sampled_from(WORKERS))
    def release_on_shutdown(self, worker: str) -> None:
        self.store.release(worker)
        for job in self.model.running():
            if job.worker == worker:  # handed back without using the attempt
                job.attempts -= 1
                job.handle = job.worker = None

    @rule()
    def expiry_sweep(self) -> None:
        self.store.expire(100)

    @rule(concurrency=st.sampled_from([None, 1, 2, 3]), group_cap=st.sampled_from([None, 1, 2]))
    def operator_changes_the_caps(self, concurrency: int | None, group_cap: int | None) -> None:
        self._set_caps(concurrency, group_cap)

    @precondition(lambda self: len(self.model.jobs) >= 12 and self.model.steps_since_drain >= 10)
    @rule()
    def lift_every_limit_and_drain(self) -> None:
        """No limits: the workers take everything pending (parked jobs included) to the end;
        nothing may stay pending or parked. Then the limits are set again."""
        for queue in QUEUES:
            self.store.set_limits(queue, Limits())
        self.model.caps = (None, None)
        for job in self.model.running():
            assert job.handle is not None and job.worker is not None
            self.store.complete(job.worker, job.handle, '"ok"')
            job.handle = job.worker = None
        for _ in range(DRAIN_ROUNDS):
            claimed = self.store.claim("w1", 10, QUEUES)
            if not claimed:
                break
            self._started("w1", list(claimed), self.store.server_time_ms())
            for handle in claimed:
                self.store.complete("w1", handle, '"ok"')
                self.model.jobs[handle.id].handle = self.model.jobs[handle.id].worker = None
        for queue in QUEUES:
            assert self.store.queue_info(queue).pending == 0, queue
            assert self.store.queue_info(queue).parked == 0, queue
        self.store.set_limits(RATED, Limits(rate=RATE))  # set afresh: one more start allowed
        self.model.rated_starts = 0
        self.model.steps_since_drain = 0
        self.totals["drains"] += 1

    # -- invariants --------------------------------------------------------------------------

    def check_invariants(self, *args: Any, **kwargs: Any) -> None:
        """After every step: one fresh snapshot of Redis (one pipeline) for all invariants."""
        self.model.steps_since_drain += 1
        self._seen = None
        super().check_invariants(*args, **kwargs)

    def _snapshot(self) -> Snapshot:
        if self._seen is None:
            pipe = self.client.pipeline(transaction=False)
            ids = sorted(self.model.jobs)
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            for worker in WORKERS:
                pipe.lrange(self.keys.processing(worker), 0, -1)
            for queue in QUEUES:
                pipe.lrange(self.keys.queue(queue), 0, -1)
                pipe.hgetall(self.keys.groups(queue))
                for group in GROUPS:
                    pipe.lrange(self.keys.waiting(group_ref(queue, group)), 0, -1)
            pipe.hgetall(self.keys.inflight)
            replies = iter(pipe.execute())
            seen = Snapshot(jobs={job_id: next(replies) for job_id in ids})
            seen.processing = {worker: next(replies) for worker in WORKERS}
            for queue in QUEUES:
                seen.queues[queue] = next(replies)
                seen.groups[queue] = next(replies)
                for group in GROUPS:
                    seen.waiting[(queue, group)] = next(replies)
            seen.inflight = {q: int(n) for q, n in next(replies).items()}
            self._seen = seen
        return self._seen

    @invariant()
    def worker_lists_hold_exactly_the_running_jobs(self) -> None:
        for worker in WORKERS:
            held = sorted(self._snapshot().processing[worker])
            assert held == sorted(j.id for j in self.model.running() if j.worker == worker)

    @invariant()
    def the_rate_lets_one_job_start_an_hour(self) -> None:
        assert self.model.rated_starts <= 1, self.model.rated_starts

    @invariant()
    def inflight_and_group_counts_are_exactly_the_processing_jobs(self) -> None:
        per_queue, per_group = self._processing()
        seen = self._snapshot()
        for queue in QUEUES:
            assert seen.inflight.get(queue, 0) == per_queue[queue], queue
            counted = {g: int(n) for g, n in seen.groups[queue].items() if g != PARKED_FIELD}
            running = {g: per_group[(queue, g)] for g in GROUPS if per_group[(queue, g)]}
            assert counted == running, queue

    @invariant()
    def parked_jobs_wait_pending_in_one_place_without_using_an_attempt(self) -> None:
        seen = self._snapshot()
        held = {job_id for ids in seen.processing.values() for job_id in ids}
        for queue in QUEUES:
            listed = set(seen.queues[queue])
            parked_total = 0
            for group in GROUPS:
                waiting = seen.waiting[(queue, group)]
                parked_total += len(waiting)
                assert len(waiting) == len(set(waiting)), (queue, group, waiting)
                for job_id in waiting:
                    job, fields = self.model.jobs[job_id], seen.jobs[job_id]
                    # A job cancelled (or expired) while parked stays listed until it is popped.
                    assert fields["status"] in ("pending", "cancelled"), (job_id, fields)
                    assert job_id not in listed and job_id not in held, job_id
                    assert int(fields.get("attempts") or 0) == job.attempts, job_id
                    assert job.group == group and job.queue == queue
                    self.totals["parked seen"] += 1
            stored = seen.groups[queue].get(PARKED_FIELD)
            assert int(stored or 0) == parked_total, (queue, stored, parked_total)

    @invariant()
    def attempts_are_only_those_begun_and_failures_only_those_reported(self) -> None:
        for job in self.model.jobs.values():
            fields = self._snapshot().jobs[job.id]
            assert int(fields.get("attempts") or 0) == job.attempts, (job.id, fields)
            if fields["status"] == "failed":
                assert job.id in self.model.failed, f"{job.id} failed without a failure"

    @invariant()
    def expired_jobs_end_cancelled_as_expired_and_never_start(self) -> None:
        for job in self.model.jobs.values():
            fields = self._snapshot().jobs[job.id]
            if fields.get("error") == "expired":
                assert fields["status"] == "cancelled", (job.id, fields)
                assert job.attempts == 0 and job.expires == PAST, (job.id, job)
                assert int(fields["finished_at"]) >= int(fields["expires_at"]), fields
                self.totals["expired"] += 1
            if job.expires == PAST:
                assert job.attempts == 0, job.id
                assert fields["status"] in ("pending", "cancelled"), (job.id, fields)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", BACKENDS)
def test_limits_and_expiry_hold_across_every_transition(
    backend: str, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> None:
    """Fast size on fakeredis in every run; full size on both backends with --run-chaos."""
    run_model(
        LimitsMachine,
        backend=backend,
        scenario="model-based property test (limits and expiry, {backend})",
        fast=(25, 30),
        full=(300, 60),
        faults=lambda totals: (
            f"{totals['claims held back']} claims held back, {totals['parked seen']} parked "
            f"sightings, {totals['expired']} expired sightings, {totals['drains']} drains"
        ),
        pytestconfig=pytestconfig,
        request=request,
    )
