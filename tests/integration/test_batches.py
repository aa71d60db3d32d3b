"""Batches (common/batches.py, common/scripts/_batches.lua): members join in enqueue's own call,
counts follow the members' endings, and the callback jobs are created exactly once by the
script that ends the last member (or by the seal, when every member had already ended)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import orjson
import pytest
import redis

from tests.support.redis_server import RedisServer
from workstream.common.batches import MAX_BATCH_JOBS, BatchStore, callback_spec
from workstream.common.errors import (
    BatchNotFoundError,
    BatchSealedError,
    BatchTooLargeError,
    NotInBatchError,
    QueueFullError,
)
from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

CALLBACK = {"type": "report", "queue": "reports", "payload": {"to": "ops", "n": 12345678901234567}}


@pytest.fixture
def batches(store: JobStore) -> BatchStore:
    return BatchStore(store)


def specs(count: int, **fields: Any) -> list[JobSpec]:
    return [JobSpec(type="echo", **fields) for _ in range(count)]


def run_all(store: JobStore, *, fail: Collection[int] = (), queue: str = "default") -> None:
    """Claims and ends every pending job of `queue`: the i-th claimed fails for good if in
    `fail`, else completes."""
    claimed: list[ClaimedJob] = list(store.claim("w1", 1000, [queue]))
    for i, job in enumerate(claimed):
        if i in fail:
            store.fail("w1", job, "boom", permanent=True)
        else:
            store.complete("w1", job, "{}")


def callbacks(store: JobStore, queue: str = "reports") -> list[dict[str, Any]]:
    page = store.list_jobs(queue=queue, limit=100)
    return [job.to_json() for job in page.jobs]


def test_creating_a_batch_writes_jobs_record_and_membership_in_one_call(
    store: JobStore, batches: BatchStore
) -> None:
    batch_id, results = batches.create(
        specs(3), sealed=True, on_complete=callback_spec("on_complete", CALLBACK)
    )
    batch = batches.require(batch_id)
    assert (batch.state, batch.total, batch.done) == ("sealed", 3, 0)
    assert batch.on_complete is not None and not batch.on_complete.created
    members, next_offset = batches.members(batch_id, 0, 10)
    assert [m.id for m in members] == [r.job_id for r in results]
    assert next_offset is None
    job = store.get_job(results[0].job_id)
    assert job is not None and job.batch == batch_id


def test_a_refused_call_over_capacity_writes_nothing(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = Settings.from_environ({"REDIS_URL": redis_server.url, "JOB_QUEUE_CAPACITY": "2"})
    batches = BatchStore(JobStore(redis_client, settings))
    with pytest.raises(QueueFullError):
        batches.create(specs(3), sealed=True, on_complete=callback_spec("on_complete", CALLBACK))
    assert redis_client.dbsize() == 0


def test_counts_track_members_as_they_end(store: JobStore, batches: BatchStore) -> None:
    batch_id, _ = batches.create(specs(4, max_attempts=1), sealed=False)
    run_all(store, fail={1})
    batch = batches.require(batch_id)
    assert (batch.completed, batch.failed, batch.cancelled, batch.state) == (3, 1, 0, "open")
    assert len(batch.failed_ids) == 1


def test_on_complete_is_created_once_when_the_last_member_ends_failed_or_cancelled(
    store: JobStore, batches: BatchStore
) -> None:
    batch_id, results = batches.create(
        specs(3, max_attempts=1),
        sealed=True,
        on_complete=callback_spec("on_complete", CALLBACK),
        on_success=callback_spec("on_success", {"type": "celebrate", "queue": "reports"}),
    )
    store.cancel(results[2].job_id)
    assert callbacks(store) == []
    (first, second) = list(store.claim("w1", 10, ["default"]))
    store.complete("w1", first, "{}")
    assert callbacks(store) == []  # one member still runs
    store.fail("w1", second, "boom", permanent=True)
    (made,) = callbacks(store)
    assert made["type"] == "report"  # on_success is not owed: one failed, one cancelled
    summary = made["payload"]["batch"]
    assert summary["id"] == batch_id
    assert (summary["total"], summary["completed"], summary["failed"]) == (3, 1, 1)
    assert summary["cancelled"] == 1
    assert sorted(summary["failed_ids"]) == sorted([results[2].job_id, second.id])
    assert made["payload"]["n"] == 12345678901234567  # the client's numbers kept exact
    batch = batches.require(batch_id)
    assert batch.state == "settled"
    assert batch.on_complete is not None and batch.on_complete.created
    assert batch.on_success is not None and not batch.on_success.created


def test_on_success_only_when_every_member_completed(store: JobStore, batches: BatchStore) -> None:
    batches.create(
        specs(2),
        sealed=True,
        on_complete=callback_spec("on_complete", CALLBACK),
        on_success=callback_spec("on_success", {"type": "celebrate", "queue": "reports"}),
    )
    run_all(store)
    assert sorted(job["type"] for job in callbacks(store)) == ["celebrate", "report"]


def test_a_member_ended_again_after_an_operator_retry_is_not_counted_twice(
    store: JobStore, batches: BatchStore
) -> None:
    batch_id, results = batches.create(
        specs(2, max_attempts=1), sealed=False, on_complete=callback_spec("on_complete", CALLBACK)
    )
    run_all(store, fail={0})
    failed_id = next(r.job_id for r in results if store.get_status(r.job_id) is JobStatus.FAILED)
    store.retry(failed_id)
    run_all(store)
    batch = batches.require(batch_id)
    assert (batch.completed, batch.failed, batch.done) == (1, 1, 2)
    batches.seal(batch_id)
    assert len(callbacks(store)) == 1


def test_an_open_batch_takes_jobs_in_several_calls_then_settles_once_sealed(
    store: JobStore, batches: BatchStore
) -> None:
    batch_id, _ = batches.create(
        [], sealed=False, on_complete=callback_spec("on_complete", CALLBACK)
    )
    batches.add(batch_id, specs(2))
    batches.add(batch_id, specs(3))
    assert batches.require(batch_id).total == 5
    run_all(store)
    assert batches.require(batch_id).state == "open"  # all ended, but not sealed: not settled
    assert callbacks(store) == []
    assert batches.seal(batch_id).state == "settled"  # sealed after all finished: at seal
    assert len(callbacks(store)) == 1
    assert batches.seal(batch_id).state == "settled"  # sealing again changes nothing
    assert len(callbacks(store)) == 1


def test_a_sealed_batch_refuses_more_jobs_and_writes_nothing(
    store: JobStore, batches: BatchStore, redis_client: redis.Redis
) -> None:
    batch_id, _ = batches.create(specs(1), sealed=False)
    batches.seal(batch_id)
    before = redis_client.dbsize()
    with pytest.raises(BatchSealedError):
        batches.add(batch_id, specs(2))
    assert redis_client.dbsize() == before
    assert batches.require(batch_id).total == 1


def test_adding_to_an_unknown_batch_is_refused(batches: BatchStore) -> None:
    with pytest.raises(BatchNotFoundError):
        batches.add("0" * 32, specs(1))
    with pytest.raises(BatchNotFoundError):
        batches.seal("0" * 32)


def test_an_empty_batch_sealed_settles_at_once_with_its_callbacks(
    store: JobStore, batches: BatchStore
) -> None:
    batch_id, _ = batches.create(
        [],
        sealed=False,
        on_complete=callback_spec("on_complete", CALLBACK),
        on_success=callback_spec("on_success", {"type": "celebrate", "queue": "reports"}),
    )
    assert batches.seal(batch_id).state == "settled"
    assert sorted(job["type"] for job in callbacks(store)) == ["celebrate", "report"]


def test_a_retried_add_with_the_same_entry_keys_adds_nothing_twice(
    store: JobStore, batches: BatchStore
) -> None:
    batch_id, _ = batches.create([], sealed=False)
    keyed = [JobSpec(type="echo", idempotency_key=f"k{i}") for i in range(3)]
    first = batches.add(batch_id, keyed)
    again = batches.add(batch_id, keyed)
    assert [r.job_id for r in again] == [r.job_id for r in first]
    assert batches.require(batch_id).total == 3


def test_a_job_outside_the_batch_cannot_join_it(store: JobStore, batches: BatchStore) -> None:
    store.enqueue(JobSpec(type="echo", idempotency_key="elsewhere"))
    batch_id, _ = batches.create([], sealed=False)
    with pytest.raises(NotInBatchError):
        batches.add(batch_id, [JobSpec(type="echo", idempotency_key="elsewhere")])
    assert batches.require(batch_id).total == 0


def test_settling_lets_the_record_expire_after_the_result_ttl(
    store: JobStore, batches: BatchStore, redis_client: redis.Redis
) -> None:
    batch_id, _ = batches.create(specs(1), sealed=True)
    assert redis_client.pttl(store.keys.batch(batch_id)) == -1
    run_all(store)
    ttl_ms = store.settings.result_ttl.total_seconds() * 1000
    assert 0 < redis_client.pttl(store.keys.batch(batch_id)) <= ttl_ms
    assert 0 < redis_client.pttl(store.keys.batch_jobs(batch_id)) <= ttl_ms


def test_batches_list_newest_first_in_pages(batches: BatchStore) -> None:
    made = [batches.create([], sealed=False)[0] for _ in range(3)]
    first = batches.list(limit=2)
    assert len(first.batches) == 2 and first.next_cursor is not None
    rest = batches.list(limit=2, cursor=first.next_cursor)
    listed = [b.id for b in first.batches + rest.batches]
    assert sorted(listed) == sorted(made)
    assert rest.next_cursor is None


def test_the_members_bound_is_checked_before_any_write(
    batches: BatchStore, redis_client: redis.Redis
) -> None:
    assert batches.max_jobs == MAX_BATCH_JOBS == 1_000_000
    batches.max_jobs = 3
    with pytest.raises(BatchTooLargeError):
        batches.create(specs(4), sealed=True)
    assert redis_client.dbsize() == 0
    batch_id, _ = batches.create(specs(2), sealed=False)
    before = redis_client.dbsize()
    with pytest.raises(BatchTooLargeError):
        batches.add(batch_id, specs(2))
    assert redis_client.dbsize() == before
    batches.add(batch_id, specs(1))
    assert batches.require(batch_id).total == 3


def test_the_callback_job_is_a_plain_job_workers_run(store: JobStore, batches: BatchStore) -> None:
    batches.create(specs(1), sealed=True, on_complete=callback_spec("on_complete", CALLBACK))
    run_all(store)
    (claimed,) = list(store.claim("w1", 1, ["reports"]))
    payload = orjson.loads(claimed.payload_json)
    assert payload["batch"]["total"] == 1 and payload["to"] == "ops"


def test_settling_appends_the_batch_event_and_its_callbacks_creation(
    store: JobStore, batches: BatchStore, redis_client: redis.Redis
) -> None:
    batch_id, _ = batches.create(
        specs(1), sealed=True, on_complete=callback_spec("on_complete", CALLBACK)
    )
    run_all(store)
    stream = cast(list[tuple[str, dict[str, str]]], redis_client.xrange(store.keys.events))
    entries = [fields for _, fields in stream]
    settled = [e for e in entries if e["ev"] == "batch_settled"]
    assert len(settled) == 1 and settled[0]["job"] == batch_id
    assert settled[0]["detail"] == "completed=1 failed=0 cancelled=0"
    made = [e for e in entries if e["ev"] == "created" and e["queue"] == "reports"]
    assert len(made) == 1 and made[0]["detail"] == f"on_complete of batch {batch_id}"


def test_members_with_dependencies_wait_then_settle_the_batch(
    store: JobStore, batches: BatchStore
) -> None:
    first = JobSpec.from_mapping({"type": "echo", "id": "extract-1"})
    then = JobSpec.from_mapping({"type": "echo", "id": "load-1", "depends_on": ["extract-1"]})
    batch_id, results = batches.create(
        [first, then], sealed=True, on_complete=callback_spec("on_complete", CALLBACK)
    )
    assert [r.status for r in results] == [JobStatus.PENDING, JobStatus.WAITING]
    run_all(store)  # extract-1; load-1 becomes pending
    assert batches.require(batch_id).state == "sealed"
    run_all(store)  # load-1
    batch = batches.require(batch_id)
    assert (batch.state, batch.completed) == ("settled", 2)
    assert len(callbacks(store)) == 1


def test_a_member_created_cancelled_by_a_failed_parent_is_counted_at_once(
    store: JobStore, batches: BatchStore
) -> None:
    store.enqueue(JobSpec.from_mapping({"type": "echo", "id": "parent", "max_attempts": 1}))
    run_all(store, fail={0})
    child = JobSpec.from_mapping({"type": "echo", "depends_on": ["parent"]})
    batch_id, results = batches.create(
        [child], sealed=True, on_complete=callback_spec("on_complete", CALLBACK)
    )
    assert results[0].status is JobStatus.CANCELLED
    batch = batches.require(batch_id)
    assert (batch.state, batch.cancelled) == ("settled", 1)
    assert len(callbacks(store)) == 1


def test_a_hand_edited_batch_key_never_stops_a_member_ending_nor_half_writes_an_add(
    store: JobStore, batches: BatchStore, redis_client: redis.Redis
) -> None:
    batch_id, results = batches.create(specs(1), sealed=False)
    redis_client.delete(store.keys.batch(batch_id))
    redis_client.set(store.keys.batch(batch_id), "not a hash")
    run_all(store)
    assert store.get_status(results[0].job_id) is JobStatus.COMPLETED
    other, _ = batches.create([], sealed=False)
    redis_client.set(store.keys.batch_jobs(other), "not a list")
    before = redis_client.dbsize()
    with pytest.raises(BatchNotFoundError):
        batches.add(other, specs(2))
    assert redis_client.dbsize() == before
