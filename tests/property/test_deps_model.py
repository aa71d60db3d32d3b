"""A model of dependencies (depends_on), checked against the Lua scripts on fakeredis (every run)
and on a real redis-server (make chaos).

Hypothesis interleaves submissions (one job or a batch whose jobs may depend on each other and
on any job already submitted, each with on_parent_failure cancel or run), claims, completions,
permanent failures, cancels (of waiting, pending and running jobs) and operator retries of
failed parents (which revive the children their failure cancelled, and theirs, judged parents
first). After every step: each job's status is the model's; the waiting index and the queue's
awaiting set hold exactly the waiting jobs, each with the model's parents_left; each job's
dependents set holds the model's children (registered, or kept for a retry once it ended
without completing); the queue holds exactly the pending jobs; no job has left waiting before
every parent ended (and, with cancel, completed); the cancelled counter counts every cancel,
cascades included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from workstream.common.errors import DependencyError, InvalidTransitionError
from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

S = JobStatus
Q = "q"
ENDED = {S.COMPLETED, S.FAILED, S.CANCELLED}


@dataclass
class Node:
    id: str
    status: JobStatus
    parents: list[str]
    on_parent_failure: str
    left: int = 0  # parents not yet ended, while waiting
    # Its dependents set: children registered, not yet settled; once it ended without
    # completing, the children a parent's failure cancelled (kept for an operator retry).
    children: list[str] = field(default_factory=list)
    parent_failed: bool = False  # cancelled because a parent failed or was cancelled
    handle: ClaimedJob | None = None
    cancel_requested: bool = False
    retried: bool = False  # an operator retried it after it failed: it may end twice


class DepsMachine(ModelMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client: redis.Redis = self.server.client()
        self.client.flushall()
        settings_ = Settings.from_environ(
            {"REDIS_URL": self.server.url, "RESULT_TTL": "1h", "QUEUES": Q}
        )
        self.store = JobStore(self.client, settings_)
        self.keys = self.store.keys
        self.jobs: dict[str, Node] = {}
        self.cancelled = 0

    def teardown(self) -> None:
        self.client.close()

    @initialize()
    def nothing_yet(self) -> None:
        pass

    # -- the model's own rules ---------------------------------------------------------------

    def _settle(self, job_id: str, status: JobStatus) -> None:
        """_deps.lua's settle_dependents, walked the same way (a work list)."""
        work = [(job_id, status)]
        while work:
            parent_id, parent_status = work.pop()
            parent = self.jobs[parent_id]
            children, parent.children = parent.children, []
            failed = parent_status != S.COMPLETED
            for child_id in children:
                child = self.jobs[child_id]
                if child.status != S.WAITING:
                    if failed and child.status == S.CANCELLED and child.parent_failed:
                        parent.children.append(child_id)  # kept: an earlier failure's
                    continue
                if failed and child.on_parent_failure == "cancel":
                    child.status, child.parent_failed = S.CANCELLED, True
                    parent.children.append(child_id)  # kept for a retry of this parent
                    self.cancelled += 1
                    self.totals["cascaded cancels"] += 1
                    work.append((child_id, S.CANCELLED))
                else:
                    child.left -= 1
                    if child.left == 0:
                        child.status = S.PENDING
                        self.totals["released"] += 1

    def _end(self, node: Node, status: JobStatus) -> None:
        node.status, node.handle = status, None
        if status == S.CANCELLED:
            self.cancelled += 1
        self._settle(node.id, status)

    def _created(self, node: Node) -> None:
        """enqueue.lua's rule: a completed parent counts as done, a failed or cancelled one
        cancels a child with on_parent_failure cancel at once, any other is waited for."""
        failed = False
        for parent_id in node.parents:
            parent = self.jobs[parent_id]
            if parent.status == S.COMPLETED:
                continue
            if parent.status in (S.FAILED, S.CANCELLED):
                failed = failed or node.on_parent_failure == "cancel"
                continue
            node.left += 1
        if failed:
            node.status, node.left, node.parent_failed = S.CANCELLED, 0, True
            self.cancelled += 1
            self.totals["cancelled at submission"] += 1
            for parent_id in node.parents:  # each ended parent that did not complete keeps it
                if self.jobs[parent_id].status in (S.FAILED, S.CANCELLED):
                    self.jobs[parent_id].children.append(node.id)
        elif node.left:
            node.status = S.WAITING
            for parent_id in node.parents:
                if self.jobs[parent_id].status not in ENDED:
                    self.jobs[parent_id].children.append(node.id)
        self.jobs[node.id] = node

    # -- rules -------------------------------------------------------------------------------

    @rule(
        size=st.integers(1, 3),
        data=st.data(),
    )
    def submit(self, size: int, data: st.DataObject) -> None:
        base = len(self.jobs)
        ids = [f"j{base + i}" for i in range(size)]
        specs, plans = [], []
        for i, job_id in enumerate(ids):
            choices = sorted(self.jobs) + ids[:i]  # earlier jobs and earlier ones of the batch
            parents = data.draw(
                st.lists(st.sampled_from(choices), max_size=3, unique=True)
                if choices
                else st.just([])
            )
            mode = data.draw(st.sampled_from(["cancel", "run"]))
            fields: dict[str, object] = {"type": "t", "queue": Q, "id": job_id, "max_attempts": 1}
            if parents:
                fields.update(depends_on=parents, on_parent_failure=mode)
            specs.append(JobSpec.from_mapping(fields))
            plans.append((job_id, parents, mode))
        shuffled = data.draw(st.permutations(range(size)))  # a batch in any order
        results = self.store.enqueue_many([specs[i] for i in shuffled])
        for at, i in enumerate(shuffled):
            assert results[at].job_id == ids[i]
        for job_id, parents, mode in plans:  # parents first: ids are in creation order
            self._created(Node(job_id, S.PENDING, parents, mode))
        self.totals["created"] += size
        statuses = {ids[i]: results[at].status for at, i in enumerate(shuffled)}
        for job_id in ids:
            assert statuses[job_id] == self.jobs[job_id].status, job_id

    @rule()
    def submit_naming_an_unknown_parent(self) -> None:
        before = self.client.dbsize()
        with pytest.raises(DependencyError):
            self.store.enqueue(JobSpec.from_mapping({"type": "t", "depends_on": ["ghost"]}))
        assert self.client.dbsize() == before

    @rule(count=st.integers(1, 3))
    def claim(self, count: int) -> None:
        pending = {j.id for j in self.jobs.values() if j.status == S.PENDING and not j.handle}
        claimed = self.store.claim("w1", count, [Q])
        assert len(claimed) == min(count, len(pending))
        for handle in claimed:
            assert handle.id in pending
            node = self.jobs[handle.id]
            node.status, node.handle = S.PROCESSING, handle

    @rule(fail=st.booleans())
    def run_the_next_job(self, fail: bool) -> None:
        """Claim one job and end it at once (the common path, so that parents often end)."""
        claimed = self.store.claim("w1", 1, [Q])
        if not claimed:
            assert not any(j.status == S.PENDING and not j.handle for j in self.jobs.values())
            return
        node = self.jobs[claimed[0].id]
        assert node.status == S.PENDING and node.handle is None
        if fail:
            self.store.fail("w1", claimed[0], "boom", permanent=True)
        else:
            self.store.complete("w1", claimed[0], '"ok"')
        self._end(node, S.FAILED if fail else S.COMPLETED)

    def _running(self) -> list[Node]:
        return [j for j in self.jobs.values() if j.status == S.PROCESSING]

    @precondition(lambda self: self._running())
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self._running()))
        assert node.handle is not None
        self.store.complete("w1", node.handle, '"ok"')
        self._end(node, S.CANCELLED if node.cancel_requested else S.COMPLETED)

    @precondition(lambda self: self._running())
    @rule(data=st.data())
    def fail_for_good(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self._running()))
        assert node.handle is not None
        self.store.fail("w1", node.handle, "boom", permanent=True)
        self._end(node, S.CANCELLED if node.cancel_requested else S.FAILED)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(sorted(self.jobs.values(), key=lambda n: n.id)))
        if node.status == S.PROCESSING:
            self.store.cancel(node.id)
            node.cancel_requested = True
            return
        if node.status in ENDED:
            with pytest.raises(InvalidTransitionError):
                self.store.cancel(node.id)
            return
        assert self.store.cancel(node.id).status == S.CANCELLED
        self._end(node, S.CANCELLED)

    @precondition(lambda self: any(j.status == S.FAILED for j in self.jobs.values()))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        failed = sorted((j for j in self.jobs.values() if j.status == S.FAILED), key=lambda n: n.id)
        node = data.draw(st.sampled_from(failed))
        self.store.retry(node.id)
        node.status, node.retried, node.cancel_requested = S.PENDING, True, False
        self._revive(node.id)

    def _failed_parents(self) -> list[Node]:
        return sorted(
            (j for j in self.jobs.values() if j.status == S.FAILED and j.children),
            key=lambda n: n.id,
        )

    @precondition(lambda self: self._failed_parents())
    @rule(data=st.data())
    def retry_a_failed_parent(self, data: st.DataObject) -> None:
        """retry, aimed at a failed job that kept children its failure cancelled."""
        node = data.draw(st.sampled_from(self._failed_parents()))
        self.store.retry(node.id)
        node.status, node.retried, node.cancel_requested = S.PENDING, True, False
        self._revive(node.id)

    def _revive(self, job_id: str) -> None:
        """_deps.lua's revive_dependents: the children the retried job's failure cancelled (and
        theirs, through each one's kept children) are judged parents first; one whose parents
        are all completed, live or revived waits again, any other stays cancelled."""
        found: list[str] = []
        walk = [job_id]
        while walk:
            for child_id in self.jobs[walk.pop(0)].children:
                child = self.jobs[child_id]
                if child_id not in found and child.status == S.CANCELLED and child.parent_failed:
                    found.append(child_id)
                    walk.append(child_id)
        revived: set[str] = set()
        judged: set[str] = set()
        while len(judged) < len(found):
            child_id = next(
                c for c in found
                if c not in judged
                and all(p in judged for p in self.jobs[c].parents if p in found)
            )  # fmt: skip
            judged.add(child_id)
            child, left, live = self.jobs[child_id], 0, []
            for parent_id in child.parents:
                parent = self.jobs[parent_id]
                status = (
                    (S.WAITING if parent_id in revived else S.CANCELLED)
                    if parent_id in found
                    else parent.status
                )
                if status in (S.FAILED, S.CANCELLED):
                    left = -1
                    break
                if status != S.COMPLETED:
                    left += 1
                    live.append(parent)
            if left > 0:
                child.status, child.left, child.parent_failed = S.WAITING, left, False
                child.retried = True  # it ended once: children with `run` were settled then
                for parent in live:
                    if child_id not in parent.children:
                        parent.children.append(child_id)
                revived.add(child_id)
                self.totals["revived"] += 1

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def every_status_is_the_models_and_waiting_jobs_know_what_is_left(self) -> None:
        nodes = list(self.jobs.values())
        pipe = self.client.pipeline(transaction=False)
        for node in nodes:
            pipe.hmget(self.keys.job(node.id), ["status", "parents_left"])
        for node, (status, left) in zip(nodes, pipe.execute(), strict=True):
            assert status == node.status.value, node.id
            if node.status == S.WAITING:
                assert left == str(node.left), node.id
        waiting = {j.id for j in nodes if j.status == S.WAITING}
        assert set(self.client.zrange(self.keys.status(S.WAITING), 0, -1)) == waiting
        assert set(self.client.zrange(self.keys.awaiting(Q), 0, -1)) == waiting

    @invariant()
    def each_dependents_set_holds_the_models_children(self) -> None:
        """Registered children while a job has not ended; after it ended without completing,
        the children kept for a retry (the ones a parent's failure cancelled)."""
        nodes = list(self.jobs.values())
        pipe = self.client.pipeline(transaction=False)
        for node in nodes:
            pipe.smembers(self.keys.dependents(node.id))
        for node, members in zip(nodes, pipe.execute(), strict=True):
            assert members == set(node.children), node.id

    @invariant()
    def the_queue_holds_exactly_the_pending_jobs(self) -> None:
        pending = {j.id for j in self.jobs.values() if j.status == S.PENDING}
        listed = self.client.lrange(self.keys.queue(Q), 0, -1)
        assert sorted(listed) == sorted(pending)

    @invariant()
    def no_job_left_waiting_before_its_parents_ended(self) -> None:
        for node in self.jobs.values():
            if not node.parents or node.status in (S.WAITING, S.CANCELLED):
                continue
            for parent_id in node.parents:
                parent = self.jobs[parent_id]
                if parent.retried:
                    continue  # it ended once already: that is when the child was settled
                assert parent.status in ENDED, (node.id, parent_id)
                if node.on_parent_failure == "cancel":
                    assert parent.status == S.COMPLETED, (node.id, parent_id)

    @invariant()
    def the_cancelled_counter_counts_every_cancel(self) -> None:
        counted = sum(
            value for key, value in self.store.stats().items() if key.startswith("cancelled|")
        )
        assert counted == self.cancelled


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dependencies_settle_as_the_model_says(
    backend: str, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> None:
    run_model(
        DepsMachine,
        backend=backend,
        scenario="dependency model (depends_on, {backend})",
        fast=(20, 35),
        full=(300, 80),
        faults=lambda totals: (
            f"{totals['released']} released, {totals['cascaded cancels']} cascaded cancels, "
            f"{totals['cancelled at submission']} cancelled at submission, "
            f"{totals['revived']} revived by a parent's retry"
        ),
        pytestconfig=pytestconfig,
        request=request,
    )
