"""The store model (test_store_model) with an HTTP consumer beside the Python workers: Hypothesis
interleaves leases (lease.lua) with every other transition, and answers sent under tokens that
are stale, of another lease or expired. Each must be refused as lease_lost, counted, and change
nothing; a leased job is answered through the same complete and fail rules as a worker's, and
every invariant of the model (one place per status, lists, indexes, gauges, counters, history)
holds with the consumer's processing list among the workers' lists."""

from __future__ import annotations

import time
from collections import Counter

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from tests.property import test_store_model as base
from tests.property.harness import FakeRedisServer
from workstream.common.jobs import ClaimedJob
from workstream.common.leases import LeaseLostError, Leases, worker_id
from workstream.common.states import JobStatus

S = JobStatus
CONSUMER = "c1"
CONSUMER_ID = worker_id(CONSUMER)


class LeaseMachine(base.JobStoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.leases = Leases(self.store)
        self.margin_ms = round(self.store.settings.worker_ttl.total_seconds() * 1000)
        # Every token handed out: job id and the handle of that attempt.
        self.tokens: dict[str, tuple[str, ClaimedJob]] = {}

    def _live(self) -> list[str]:
        """Tokens whose lease still holds: the job runs under that very attempt."""
        return [
            token
            for token, (job_id, handle) in self.tokens.items()
            if job_id in self.model.jobs and self.model.jobs[job_id].handle is handle
        ]

    def _voided(self) -> list[str]:
        """Tokens of attempts someone else ended (reclaim, an operator's delete)."""
        return [
            token
            for token, (job_id, handle) in self.tokens.items()
            if job_id not in self.model.jobs or handle in self.model.stale
        ]

    @rule(count=st.integers(1, 3))
    def lease_over_http(self, count: int) -> None:
        expected = self._expected_claim(count, True)  # a consumer runs each job on its own
        leases, now = self.leases.lease(CONSUMER, base.QUEUES, count, 60)
        assert [x.job.id for x in leases] == expected
        for x in leases:
            job = self.model.jobs[x.job.id]
            number = x.token.split(".")[0]
            handle = ClaimedJob(
                x.job.id, "t", job.queue, "{}", x.job.attempts, job.max_attempts, 0, number, 0,
                alone=job.suspect,
            )  # fmt: skip
            self._started(CONSUMER_ID, handle, moved=True)
            self.tokens[x.token] = (x.job.id, handle)
            assert x.expires_at == now + 60_000
            deadline = self.client.zscore(self.keys.deadlines, x.job.id)
            assert deadline == x.expires_at - self.margin_ms  # reclaimed at the expiry
        self.totals["leased"] += len(leases)

    @precondition(lambda self: self._live())
    @rule(data=st.data())
    def extend_over_http(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(self._live()))
        job_id, _ = self.tokens[token]
        expires, cancel = self.leases.extend(job_id, token, 120, '{"p":1}')
        assert cancel == self.model.jobs[job_id].cancel_requested
        assert self.client.zscore(self.keys.deadlines, job_id) == expires - self.margin_ms

    @precondition(lambda self: self._voided())
    @rule(data=st.data(), how=st.sampled_from(["complete", "fail", "extend"]))
    def answer_under_a_voided_lease(self, data: st.DataObject, how: str) -> None:
        token = data.draw(st.sampled_from(self._voided()))
        self._refused(self.tokens[token][0], token, how)

    @precondition(lambda self: self._live())
    @rule(data=st.data(), how=st.sampled_from(["complete", "fail", "extend"]))
    def answer_under_a_token_of_another_lease(self, data: st.DataObject, how: str) -> None:
        token = data.draw(st.sampled_from(self._live()))
        number, nonce = token.split(".")
        forged = f"{number}.{'0' * 16 if nonce != '0' * 16 else '1' * 16}"
        self._refused(self.tokens[token][0], forged, how)

    @precondition(lambda self: self._live())
    @rule(data=st.data(), how=st.sampled_from(["complete", "fail", "extend"]))
    def answer_after_the_lease_expired(self, data: st.DataObject, how: str) -> None:
        token = data.draw(st.sampled_from(self._live()))
        job_id, _ = self.tokens[token]
        key = self.keys.job(job_id)
        expires = self.client.hget(key, "lease_expires_at")
        assert expires is not None
        self.client.hset(key, "lease_expires_at", 1)  # long past
        self._refused(job_id, token, how, ignore=frozenset({"lease_expires_at"}))
        self.client.hset(key, "lease_expires_at", expires)  # the test's hand goes again

    def _refused(
        self, job_id: str, token: str, how: str, ignore: frozenset[str] = frozenset()
    ) -> None:
        key = self.keys.job(job_id)
        before = self.client.hgetall(key)
        with pytest.raises(LeaseLostError):
            if how == "complete":
                self.leases.complete(job_id, token, '"late"')
            elif how == "fail":
                self.leases.fail(job_id, token, "late", retry=True)
            else:
                self.leases.extend(job_id, token, 60)
        after = self.client.hgetall(key)
        assert {k: v for k, v in after.items() if k not in ignore} == {
            k: v for k, v in before.items() if k not in ignore
        }, f"a refused {how} must change nothing"
        self.model.counts["stale_completions"] += 1
        self.totals[f"refused {how}"] += 1

    @invariant()
    def the_consumer_is_alive_while_it_holds_a_lease(self) -> None:
        if self.model.processing[CONSUMER_ID] and any(
            self.model.jobs[i].status == S.PROCESSING for i in self.model.processing[CONSUMER_ID]
        ):
            assert CONSUMER_ID not in self.store.dead_workers()


@pytest.mark.timeout(900)
def test_leases_keep_every_job_in_one_consistent_place(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On fakeredis; the consumer's list joins the workers' lists the invariants read, while
    the base rules keep acting for the Python workers only (their strategies are built)."""
    pytest.importorskip("fakeredis")
    chaos = bool(pytestconfig.getoption("--run-chaos"))
    examples, steps = (200, 60) if chaos else (40, 40)
    monkeypatch.setattr(base, "WORKERS", (*base.WORKERS, CONSUMER_ID))
    LeaseMachine.server = FakeRedisServer()
    LeaseMachine.totals = Counter()
    started = time.monotonic()
    run_state_machine_as_test(
        LeaseMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            derandomize=not chaos,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
    totals = LeaseMachine.totals
    print(  # noqa: T201 - the figures are the point of this line
        f"\nlease model: {totals['leased']} leased, refused: {totals['refused complete']} "
        f"complete, {totals['refused fail']} fail, {totals['refused extend']} extend, "
        f"in {time.monotonic() - started:.1f}s"
    )
    assert totals["leased"] > 0
