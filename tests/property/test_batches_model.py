"""A model of batches, checked against the Lua scripts on a real redis-server.

Hypothesis interleaves creating batches (sealed with jobs, or open), adding jobs in further
calls (refused once sealed), sealing, and the members' own transitions: claim, complete (and
the same complete sent again after a lost reply), fail for good, cancel while pending, and an
operator retry of a failed member that then ends again. After every step each batch's state
and counts equal the model's (a member counts once, at its first ending), its callbacks exist
exactly when the model says (on_complete once the batch is sealed and every member ended;
on_success only when every member completed), and no callback is ever created twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

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

from tests.support.redis_server import RedisServer
from workstream.common.batches import BatchStore, callback_spec
from workstream.common.errors import BatchSealedError
from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

S = JobStatus
TERMINAL = {S.COMPLETED, S.FAILED, S.CANCELLED}
ON_COMPLETE = {"type": "report", "queue": "reports"}
ON_SUCCESS = {"type": "celebrate", "queue": "reports"}


@dataclass
class ModelBatch:
    id: str
    state: str  # open | sealed | settled
    members: list[str] = field(default_factory=list)
    counted: dict[str, JobStatus] = field(default_factory=dict)  # first ending of each member

    def settles(self) -> bool:
        return self.state == "sealed" and len(self.counted) == len(self.members)


class BatchMachine(RuleBasedStateMachine):
    server: ClassVar[RedisServer]

    @initialize()
    def start(self) -> None:
        self.client: redis.Redis = self.server.client()
        self.client.flushall()
        env = {"REDIS_URL": self.server.url, "RETRY_BACKOFF": "0s"}
        self.store = JobStore(self.client, Settings.from_environ(env))
        self.batches_store = BatchStore(self.store)
        self.batches: dict[str, ModelBatch] = {}
        self.status: dict[str, JobStatus] = {}
        self.running: dict[str, ClaimedJob] = {}
        self.done_handles: list[ClaimedJob] = []  # completed runs, to send again

    def _specs(self, count: int) -> list[JobSpec]:
        return [JobSpec(type="echo", max_attempts=1) for _ in range(count)]

    def _joined(self, batch: ModelBatch, ids: list[str]) -> None:
        batch.members += ids
        for job_id in ids:
            self.status[job_id] = S.PENDING

    def _ended(self, job_id: str, status: JobStatus) -> None:
        self.status[job_id] = status
        for batch in self.batches.values():
            if job_id in batch.members and job_id not in batch.counted:
                batch.counted[job_id] = status
                if batch.settles():
                    batch.state = "settled"

    @rule(count=st.integers(0, 3), sealed=st.booleans())
    def create(self, count: int, sealed: bool) -> None:
        sealed = sealed and count > 0
        batch_id, results = self.batches_store.create(
            self._specs(count),
            sealed=sealed,
            on_complete=callback_spec("on_complete", ON_COMPLETE),
            on_success=callback_spec("on_success", ON_SUCCESS),
        )
        batch = ModelBatch(batch_id, "sealed" if sealed else "open")
        self.batches[batch_id] = batch
        self._joined(batch, [r.job_id for r in results])

    @precondition(lambda self: self.batches)
    @rule(data=st.data(), count=st.integers(1, 3))
    def add(self, data: st.DataObject, count: int) -> None:
        batch = self.batches[data.draw(st.sampled_from(list(self.batches)))]
        if batch.state != "open":
            with pytest.raises(BatchSealedError):
                self.batches_store.add(batch.id, self._specs(count))
            return
        results = self.batches_store.add(batch.id, self._specs(count))
        self._joined(batch, [r.job_id for r in results])

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def seal(self, data: st.DataObject) -> None:
        batch = self.batches[data.draw(st.sampled_from(list(self.batches)))]
        sealed = self.batches_store.seal(batch.id)
        if batch.state == "open":
            batch.state = "sealed"
            if batch.settles():
                batch.state = "settled"
        assert sealed.state == batch.state

    @rule(count=st.integers(1, 3))
    def claim(self, count: int) -> None:
        for job in self.store.claim("w1", count, ["default"]):
            self.running[job.id] = job
            self.status[job.id] = S.PROCESSING

    @precondition(lambda self: self.running)
    @rule(data=st.data(), outcome=st.sampled_from(["complete", "fail"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        self.finish_one(data.draw(st.sampled_from(list(self.running))), outcome)

    @precondition(lambda self: self.done_handles)
    @rule(data=st.data())
    def complete_sent_again(self, data: st.DataObject) -> None:
        """The settling script sent again after a lost reply: it changes nothing."""
        job = data.draw(st.sampled_from(self.done_handles))
        if self.status.get(job.id) is S.COMPLETED:
            self.store.complete("w1", job, "{}")

    @precondition(lambda self: any(s is S.PENDING for s in self.status.values()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        pending = [i for i, s in self.status.items() if s is S.PENDING]
        job_id = data.draw(st.sampled_from(pending))
        self.store.cancel(job_id)
        self._ended(job_id, S.CANCELLED)

    @precondition(lambda self: any(s is S.FAILED for s in self.status.values()))
    @rule(data=st.data())
    def operator_retry(self, data: st.DataObject) -> None:
        self._retry(data)

    def _retry(self, data: st.DataObject) -> str:
        failed = [i for i, s in self.status.items() if s is S.FAILED]
        job_id = data.draw(st.sampled_from(failed))
        self.store.retry(job_id)
        self.status[job_id] = S.PENDING  # it stays counted as failed in its batch
        return job_id

    @precondition(lambda self: any(s is S.FAILED for s in self.status.values()))
    @rule(data=st.data())
    def retried_member_ends_again(self, data: st.DataObject) -> None:
        """An operator retry of a failed member whose new run completes: still counted once."""
        retried = self._retry(data)
        for job in self.store.claim("w1", 1000, ["default"]):
            self.running[job.id] = job
            self.status[job.id] = S.PROCESSING
        self.finish_one(retried, "complete")

    def finish_one(self, job_id: str, outcome: str) -> None:
        job = self.running.pop(job_id)
        if outcome == "complete":
            self.store.complete("w1", job, "{}")
            self.done_handles.append(job)
            self._ended(job.id, S.COMPLETED)
        else:
            self.store.fail("w1", job, "boom", permanent=True)
            self._ended(job.id, S.FAILED)

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        if not hasattr(self, "batches"):
            return
        made: list[str] = []
        for batch in self.batches.values():
            stored = self.batches_store.require(batch.id)
            assert stored.state == batch.state, batch.id
            assert stored.total == len(batch.members)
            outcomes = list(batch.counted.values())
            assert stored.completed == outcomes.count(S.COMPLETED)
            assert stored.failed == outcomes.count(S.FAILED)
            assert stored.cancelled == outcomes.count(S.CANCELLED)
            members, _ = self.batches_store.members(batch.id, 0, 500)
            assert [m.id for m in members] == batch.members
            assert stored.on_complete is not None and stored.on_success is not None
            settled = batch.state == "settled"
            all_completed = outcomes.count(S.COMPLETED) == len(batch.members)
            assert stored.on_complete.created is settled
            assert stored.on_success.created is (settled and all_completed)
            for info in (stored.on_complete, stored.on_success):
                if info.created:
                    made.append(info.job_id)
                else:
                    assert not self.client.exists(self.store.keys.job(info.job_id))
        callbacks = cast(list[Any], self.client.lrange(self.store.keys.queue("reports"), 0, -1))
        assert sorted(callbacks) == sorted(made)  # each once, none for an unsettled batch


def test_batch_scripts_match_the_model(redis_server: RedisServer) -> None:
    BatchMachine.server = redis_server
    run_state_machine_as_test(
        BatchMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
