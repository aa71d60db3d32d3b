"""depends_on and client-chosen ids against a real Redis, through JobStore: a job waits until
every parent has ended, is released by the script that ends its last parent, and is cancelled
(or released, with on_parent_failure=run) when a parent fails or is cancelled."""

from __future__ import annotations

from typing import cast

import pytest
import redis

from tests.conftest import make_settings
from workstream.common.errors import (
    DependencyError,
    DuplicateJobError,
    IdConflictError,
    QueueFullError,
    ValidationError,
)
from workstream.common.jobs import MAX_DEPENDENTS, ClaimedJob, JobSpec
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

W = JobStatus.WAITING


def _spec(job_id: str, *parents: str, **extra: object) -> JobSpec:
    data: dict[str, object] = {"type": "echo", "id": job_id, **extra}
    if parents:
        data["depends_on"] = list(parents)
    return JobSpec.from_mapping(data)


def _status(store: JobStore, job_id: str) -> JobStatus | None:
    return store.get_status(job_id)


def _run(store: JobStore, job_id: str, *, fail: bool = False) -> None:
    """Claims the next job, which must be `job_id`, and completes (or fails for good) it."""
    (job,) = store.claim("w1", 1, ["default"])
    assert job.id == job_id
    _finish(store, job, fail=fail)


def _finish(store: JobStore, job: ClaimedJob, *, fail: bool = False) -> None:
    if fail:
        store.fail("w1", job, "boom", permanent=True)
    else:
        store.complete("w1", job, f'"{job.id}"')


def test_a_child_waits_for_its_parent_and_is_released_when_it_completes(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    assert _status(store, "b") is W
    (a,) = store.claim("w1", 5, ["default"])  # b is not on the queue
    assert a.id == "a" and store.claim("w1", 5, ["default"]) == []
    _finish(store, a)
    assert _status(store, "b") is JobStatus.PENDING
    _run(store, "b")


def test_chain_runs_in_order(store: JobStore) -> None:
    store.enqueue_many([_spec("c", "b"), _spec("b", "a"), _spec("a")])  # any order in a call
    for job_id in ("a", "b", "c"):
        assert store.queue_info("default").pending == 1
        _run(store, job_id)
    assert [_status(store, i) for i in "abc"] == [JobStatus.COMPLETED] * 3


def test_fan_in_waits_for_the_last_parent(store: JobStore) -> None:
    store.enqueue_many([_spec("p1"), _spec("p2"), _spec("p3"), _spec("join", "p1", "p2", "p3")])
    claimed = store.claim("w1", 3, ["default"])
    assert sorted(j.id for j in claimed) == ["p1", "p2", "p3"]
    for handle in claimed[:2]:
        _finish(store, handle)
        assert _status(store, "join") is W
    _finish(store, claimed[2])
    assert _status(store, "join") is JobStatus.PENDING
    job = store.get_job("join")
    assert job is not None and job.parents_left is None and job.depends_on == ["p1", "p2", "p3"]


def test_fan_out_releases_every_child_when_the_parent_completes(store: JobStore) -> None:
    children = [_spec(f"c{i}", "root") for i in range(50)]
    store.enqueue_many([_spec("root"), *children])
    assert store.queue_info("default").pending == 1
    _run(store, "root")
    assert store.queue_info("default").pending == 50
    root = store.get_job("root")
    assert root is not None and root.children_count == 50 and len(root.children or []) == 50


def test_a_failed_parent_cancels_its_dependents_recursively(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a"), _spec("c", "b")])
    _run(store, "a", fail=True)
    for job_id in ("b", "c"):
        job = store.get_job(job_id)
        assert job is not None and job.status is JobStatus.CANCELLED
        assert job.error is not None and job.error.startswith("parent_failed")
    assert store.queue_info("default").pending == 0
    assert store.redis.zcard(store.keys.awaiting("default")) == 0


def test_on_parent_failure_run_releases_the_child_once_every_parent_ended(
    store: JobStore,
) -> None:
    store.enqueue_many([_spec("a"), _spec("b"), _spec("c", "a", "b", on_parent_failure="run")])
    a, b = store.claim("w1", 2, ["default"])
    _finish(store, a, fail=True)
    assert _status(store, "c") is W
    _finish(store, b)
    assert _status(store, "c") is JobStatus.PENDING


def test_cancelling_a_parent_cancels_its_waiting_child(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    store.cancel("a")
    job = store.get_job("b")
    assert job is not None and job.status is JobStatus.CANCELLED
    assert job.error == "parent_failed: a"


def test_a_waiting_job_can_be_cancelled_and_its_parent_ending_skips_it(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    cancelled = store.cancel("b")
    assert cancelled.status is JobStatus.CANCELLED
    assert store.redis.zcard(store.keys.awaiting("default")) == 0
    _run(store, "a")
    assert _status(store, "b") is JobStatus.CANCELLED
    assert store.queue_info("default").pending == 0


def test_a_parent_completed_before_submission_counts_as_done(store: JobStore) -> None:
    store.enqueue(_spec("a"))
    _run(store, "a")
    result = store.enqueue(_spec("b", "a"))
    assert result.status is JobStatus.PENDING


def test_a_parent_failed_before_submission_cancels_the_child_at_once(store: JobStore) -> None:
    store.enqueue(_spec("a"))
    _run(store, "a", fail=True)
    assert store.enqueue(_spec("b", "a")).status is JobStatus.CANCELLED
    job = store.get_job("b")
    assert job is not None and job.error == "parent_failed: a"
    assert store.redis.pttl(store.keys.job("b")) > 0  # expires like any ended job
    run = store.enqueue(_spec("c", "a", on_parent_failure="run"))
    assert run.status is JobStatus.PENDING


def test_unknown_parents_are_refused_naming_them_and_nothing_is_written(
    store: JobStore,
) -> None:
    store.enqueue(_spec("a"))
    with pytest.raises(DependencyError) as caught:
        store.enqueue_many([_spec("b", "a", "ghost1"), _spec("c", "ghost2")])
    assert caught.value.code == "unknown_parents"
    assert caught.value.ids == ["ghost1", "ghost2"]
    assert store.get_job("b") is None and store.get_job("c") is None


def test_a_cycle_in_one_submission_is_refused_naming_it(store: JobStore) -> None:
    with pytest.raises(DependencyError) as caught:
        store.enqueue_many([_spec("x"), _spec("a", "c"), _spec("b", "a"), _spec("c", "b")])
    assert caught.value.code == "dependency_cycle"
    assert sorted(caught.value.ids) == ["a", "b", "c"]
    with pytest.raises(DependencyError) as caught:
        store.enqueue(_spec("self", "self"))
    assert caught.value.ids == ["self"]
    assert store.get_job("x") is None


def test_a_client_id_sent_again_with_the_same_request_is_a_replay(store: JobStore) -> None:
    first = store.enqueue(_spec("mine", payload={"n": 1}))
    again = store.enqueue(_spec("mine", payload={"n": 1}))
    assert first.created and not again.created and again.job_id == "mine"
    assert store.queue_info("default").pending == 1


def test_a_client_id_sent_with_another_request_is_a_conflict(store: JobStore) -> None:
    store.enqueue(_spec("mine", payload={"n": 1}))
    with pytest.raises(IdConflictError) as caught:
        store.enqueue_many([_spec("other"), _spec("mine", payload={"n": 2})])
    assert caught.value.index == 1 and caught.value.job_id == "mine"
    assert store.get_job("other") is None


def test_an_id_given_twice_in_one_call_is_refused(store: JobStore) -> None:
    with pytest.raises(ValidationError):
        store.enqueue_many([_spec("same"), _spec("same")])


def test_waiting_jobs_count_toward_the_queue_capacity(
    redis_client: redis.Redis, settings: Settings
) -> None:
    store = JobStore(redis_client, make_settings(settings.redis_url, JOB_QUEUE_CAPACITY="3"))
    store.enqueue_many([_spec("a"), _spec("b", "a"), _spec("c", "a")])
    with pytest.raises(QueueFullError):
        store.enqueue(_spec("d"))
    assert store.get_job("d") is None


def test_waiting_is_listed_and_counted(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    page = store.list_jobs(status=JobStatus.WAITING)
    assert [job.id for job in page.jobs] == ["b"]
    assert store.queue_info("default").waiting == 1


def test_a_parents_record_expiring_strands_no_child(store: JobStore) -> None:
    """Every child a parent has is settled when it ends, so its record may go at once."""
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    _run(store, "a")
    store.redis.delete(store.keys.job("a"))  # the result TTL ran out
    assert _status(store, "b") is JobStatus.PENDING
    with pytest.raises(DependencyError):  # a later child cannot name it: refused, not stranded
        store.enqueue(_spec("c", "a"))


def test_release_and_parent_failed_cancel_append_their_events(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a"), _spec("c"), _spec("d", "c")])
    (a, c) = store.claim("w1", 2, ["default"])
    _finish(store, a)
    _finish(store, c, fail=True)
    entries = cast(list[tuple[str, dict[str, str]]], store.redis.xrange(store.keys.events))
    seen = [(f["job"], f["ev"], f["status"], f["detail"]) for _, f in entries]
    assert ("b", "ready", "pending", "") in seen
    assert ("d", "cancelled", "cancelled", "parent_failed") in seen


def test_a_client_id_holding_colons_keeps_its_idempotency_key_and_unique_lock(
    store: JobStore,
) -> None:
    keyed = _spec("order:42:resize", idempotency_key="k1")
    assert store.enqueue(keyed).created
    again = store.enqueue(keyed)
    assert (again.job_id, again.created) == ("order:42:resize", False)
    store.enqueue(_spec("order:42:zip", unique={"key": "u1"}))
    with pytest.raises(DuplicateJobError) as caught:
        store.enqueue(_spec("order:43:zip", unique={"key": "u1"}))
    assert caught.value.job_id == "order:42:zip"


def test_a_child_cancelled_by_its_parent_still_owes_its_callback(store: JobStore) -> None:
    """The cascade runs each cancelled child's own finish hook (_finish.lua), as any end does."""
    hook = "http://127.0.0.1:9/hook"
    store.enqueue_many(
        [_spec("a"), _spec("b", "a", callback_url=hook), _spec("c", "b", callback_url=hook)]
    )
    _run(store, "a", fail=True)
    for job_id in ("b", "c"):
        job = store.get_job(job_id)
        assert job is not None and job.status is JobStatus.CANCELLED
        owed = store.redis.hget(store.keys.job(job_id), "callback_job_id")
        assert owed is not None and store.get_job(owed) is not None, job_id


def test_a_parent_with_max_dependents_children_takes_no_more(store: JobStore) -> None:
    store.enqueue(_spec("hub"))
    store.redis.hset(store.keys.job("hub"), "children_count", MAX_DEPENDENTS - 1)
    assert store.enqueue(_spec("last", "hub")).status is W
    before = store.redis.dbsize()
    with pytest.raises(DependencyError) as caught:
        store.enqueue_many([_spec("x"), _spec("one-too-many", "hub")])
    assert (caught.value.code, caught.value.ids) == ("too_many_dependents", ["hub"])
    assert store.redis.dbsize() == before


# -- an operator retry of a failed parent revives what its failure cancelled -------------------


def _left(store: JobStore, job_id: str) -> int:
    return int(store.redis.hget(store.keys.job(job_id), "parents_left") or -1)


def _fail_by_id(store: JobStore, job_id: str) -> None:
    """Claims jobs until `job_id` comes and fails it for good; the others go back (released)."""
    held = []
    for _ in range(20):
        (job,) = store.claim("w1", 1, ["default"])
        if job.id == job_id:
            store.fail("w1", job, "boom", permanent=True)
            break
        held.append(job)
    else:
        raise AssertionError(f"{job_id} never came")
    for job in held:
        store.complete("w1", job, '"ok"')


def test_retrying_a_failed_parent_revives_the_chain_its_failure_cancelled(
    store: JobStore,
) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a"), _spec("c", "b")])
    _run(store, "a", fail=True)
    assert _status(store, "c") is JobStatus.CANCELLED
    store.retry("a")
    assert (_status(store, "b"), _left(store, "b")) == (W, 1)
    assert (_status(store, "c"), _left(store, "c")) == (W, 1)
    job = store.get_job("b")
    assert job is not None and job.error is None and job.finished_at is None
    assert store.redis.pttl(store.keys.job("b")) == -1  # no longer set to expire
    for job_id in ("a", "b", "c"):
        _run(store, job_id)
    assert _status(store, "c") is JobStatus.COMPLETED


def test_a_child_with_another_failed_parent_waits_again_only_once_both_are_retried(
    store: JobStore,
) -> None:
    store.enqueue_many([_spec("p1"), _spec("p2"), _spec("d", "p1", "p2")])
    _fail_by_id(store, "p1")
    _fail_by_id(store, "p2")
    store.retry("p1")
    assert _status(store, "d") is JobStatus.CANCELLED  # p2 still failed
    store.retry("p2")
    assert (_status(store, "d"), _left(store, "d")) == (W, 2)


def test_a_join_below_branches_of_unequal_depth_is_revived(store: JobStore) -> None:
    """p -> a -> d and p -> b1 -> b2 -> d: d was cancelled by a (the first to reach it), so only
    a's set holds it; it must still be judged after b2 is revived."""
    store.enqueue_many(
        [_spec("p"), _spec("a", "p"), _spec("b1", "p"), _spec("b2", "b1"), _spec("d", "a", "b2")]
    )
    _run(store, "p", fail=True)
    store.retry("p")
    assert {i: _status(store, i) for i in ("a", "b1", "b2", "d")} == dict.fromkeys(
        ("a", "b1", "b2", "d"), W
    )
    assert _left(store, "d") == 2


def test_a_child_created_cancelled_by_a_failed_parent_is_revived_by_its_retry(
    store: JobStore,
) -> None:
    store.enqueue(_spec("a"))
    _run(store, "a", fail=True)
    assert store.enqueue(_spec("b", "a")).status is JobStatus.CANCELLED
    store.retry("a")
    assert (_status(store, "b"), _left(store, "b")) == (W, 1)


def test_a_child_the_operator_cancelled_is_not_revived(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    store.cancel("b")
    _run(store, "a", fail=True)
    store.retry("a")
    assert _status(store, "b") is JobStatus.CANCELLED


def test_a_revived_child_is_in_the_waiting_indexes_and_appends_a_revived_event(
    store: JobStore,
) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    _run(store, "a", fail=True)
    store.retry("a")
    assert store.redis.zrange(store.keys.status(W), 0, -1) == ["b"]
    assert store.redis.zrange(store.keys.awaiting("default"), 0, -1) == ["b"]
    assert store.redis.zscore(store.keys.status(JobStatus.CANCELLED), "b") is None
    events = [fields for _, fields in store.redis.xrange(store.keys.events)]
    assert [e["ev"] for e in events if e["job"] == "b"][-1] == "revived"


def test_deleting_a_failed_parent_drops_the_children_it_kept(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a")])
    _run(store, "a", fail=True)
    assert store.redis.smembers(store.keys.dependents("a")) == {"b"}
    store.delete("a")
    assert not store.redis.exists(store.keys.dependents("a"))


def test_a_cancelled_childs_kept_set_expires_with_its_record(store: JobStore) -> None:
    store.enqueue_many([_spec("a"), _spec("b", "a"), _spec("c", "b")])
    _run(store, "a", fail=True)
    kept, record = (
        store.redis.pttl(store.keys.dependents("b")),
        store.redis.pttl(store.keys.job("b")),
    )
    assert kept > 0 and abs(kept - record) < 1000  # read a moment apart


def test_a_retried_parent_that_completes_drops_the_children_it_kept(store: JobStore) -> None:
    """d, created cancelled (both parents had failed), stays cancelled after p1's retry (p2
    still failed); p1's set still names it, and p1's completion must clear it as any end
    clears a dependents set, although p1 never had a child registered while live."""
    store.enqueue_many([_spec("p1"), _spec("p2")])
    _fail_by_id(store, "p1")
    _fail_by_id(store, "p2")
    assert store.enqueue(_spec("d", "p1", "p2")).status is JobStatus.CANCELLED
    store.retry("p1")
    assert store.redis.smembers(store.keys.dependents("p1")) == {"d"}
    _run(store, "p1")
    assert not store.redis.exists(store.keys.dependents("p1"))
