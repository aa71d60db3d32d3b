"""The Lua transitions against a real Redis, through JobStore."""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import make_settings
from workstream.common.errors import InvalidTransitionError, QueueFullError, StaleLeaseError
from workstream.common.jobs import JobSpec
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


def _store(client: redis.Redis, url: str, **env: str) -> JobStore:
    return JobStore(client, make_settings(url, **env))


@pytest.fixture
def url(settings: Settings) -> str:
    return settings.redis_url


def test_enqueue_puts_a_pending_job_on_its_queue(
    store: JobStore, redis_client: redis.Redis
) -> None:
    result = store.enqueue(JobSpec(type="echo", payload={"a": 1}))
    assert result.created and result.status is JobStatus.PENDING
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [result.job_id]
    job = store.get_job(result.job_id)
    assert job is not None and job.payload == {"a": 1} and job.attempts == 0


def test_a_full_queue_rejects_the_job_and_writes_nothing(
    redis_client: redis.Redis, url: str
) -> None:
    store = _store(redis_client, url, JOB_QUEUE_CAPACITY="2")
    store.enqueue_many([JobSpec(type="echo"), JobSpec(type="echo")])
    before = redis_client.dbsize()
    with pytest.raises(QueueFullError):
        store.enqueue(JobSpec(type="echo"))
    assert redis_client.dbsize() == before
    assert redis_client.llen(store.keys.queue("default")) == 2


def test_a_batch_over_capacity_is_rejected_whole(redis_client: redis.Redis, url: str) -> None:
    store = _store(redis_client, url, JOB_QUEUE_CAPACITY="3")
    with pytest.raises(QueueFullError):
        store.enqueue_many([JobSpec(type="echo") for _ in range(4)])
    assert redis_client.dbsize() == 0


def test_a_repeated_idempotency_key_returns_the_original_job(store: JobStore) -> None:
    first = store.enqueue(JobSpec(type="echo", idempotency_key="order-1"))
    again = store.enqueue(JobSpec(type="echo", idempotency_key="order-1"))
    assert again.job_id == first.job_id and not again.created
    assert store.queue_info("default").pending == 1


def test_resending_the_same_job_id_creates_it_once(store: JobStore) -> None:
    first = store.enqueue(JobSpec(type="echo"), job_id="a" * 32)
    again = store.enqueue(JobSpec(type="echo"), job_id="a" * 32)
    assert first.created and again.created and again.job_id == first.job_id
    assert store.queue_info("default").pending == 1


def test_a_delayed_job_waits_in_scheduled_until_due(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo", delay=0.3))
    assert result.status is JobStatus.SCHEDULED
    assert store.promote() == (0, store.get_job(result.job_id).run_at)  # type: ignore[union-attr]
    time.sleep(0.35)
    assert store.promote()[0] == 1
    assert store.get_status(result.job_id) is JobStatus.PENDING


def test_claims_follow_queue_priority(store: JobStore) -> None:
    low = store.enqueue(JobSpec(type="echo", queue="low"))
    high = store.enqueue(JobSpec(type="echo", queue="high"))
    claimed = store.claim("w1", 2, ["high", "low"])
    assert [job.id for job in claimed] == [high.job_id, low.job_id]
    assert all(store.get_status(job.id) is JobStatus.PROCESSING for job in claimed)


def test_a_paused_queue_is_not_claimed_from(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo"))
    store.pause("default")
    assert store.claim("w1", 5, ["default"]) == []
    store.resume("default")
    assert len(store.claim("w1", 5, ["default"])) == 1


def test_complete_records_the_result_and_leaves_the_worker_list(
    store: JobStore, redis_client: redis.Redis
) -> None:
    store.enqueue(JobSpec(type="echo"))
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, '{"done":true}')
    finished = store.get_job(job.id)
    assert finished is not None and finished.status is JobStatus.COMPLETED
    assert finished.result == {"done": True}
    assert redis_client.llen(store.keys.processing("w1")) == 0
    assert store.inflight() == {"default": 0}


def test_a_late_completion_after_a_reclaim_is_rejected_and_counted(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo"))
    (old,) = store.claim("w1", 1, ["default"])
    store.recover("w1")  # w1 presumed dead: the job goes back to pending
    (new,) = store.claim("w2", 1, ["default"])
    with pytest.raises(StaleLeaseError):
        store.complete("w1", old, '"late"')
    store.complete("w2", new, '"fresh"')
    job = store.get_job(new.id)
    assert job is not None and job.result == "fresh"
    assert store.stats()["stale_completions"] == 1


def test_a_late_failure_after_a_recover_is_rejected_and_counted(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo"))
    (old,) = store.claim("w1", 1, ["default"])
    store.recover("w1")  # w1 presumed dead: the job goes back to pending, same attempt count
    before = store.redis.hgetall(store.keys.job(old.id))
    with pytest.raises(StaleLeaseError):
        store.fail("w1", old, "late boom", permanent=True)
    assert store.redis.hgetall(store.keys.job(old.id)) == before
    assert store.stats()["stale_completions"] == 1


def test_a_late_failure_after_a_reclaim_is_rejected_and_counted(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo", max_attempts=1))
    (old,) = store.claim("w1", 1, ["default"])
    store.redis.zadd(store.keys.deadlines, {old.id: 0})  # long past its deadline
    assert store.reclaim(margin_ms=0) == 1  # its last attempt: now failed (dead letter)
    before = store.redis.hgetall(store.keys.job(old.id))
    with pytest.raises(StaleLeaseError):
        store.fail("w1", old, "late boom", permanent=False)
    assert store.redis.hgetall(store.keys.job(old.id)) == before
    assert store.stats()["stale_completions"] == 1


def test_a_late_failure_after_a_shutdown_release_is_rejected_and_counted(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo"))
    (old,) = store.claim("w1", 1, ["default"])
    store.release("w1", keep=[])  # the job was abandoned in a thread; requeued
    with pytest.raises(StaleLeaseError):
        store.fail("w1", old, "late boom", permanent=False)
    assert store.stats()["stale_completions"] == 1


def test_a_failure_sent_again_after_a_lost_reply_is_answered_ok_once(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo", max_attempts=3))
    (job,) = store.claim("w1", 1, ["default"])
    assert store.fail("w1", job, "boom", permanent=False) is JobStatus.PENDING
    assert store.fail("w1", job, "boom", permanent=False) is JobStatus.PENDING
    assert store.stats().get("stale_completions", 0) == 0
    assert sum(v for k, v in store.stats().items() if k.startswith("retried|")) == 1


def test_a_failure_retries_until_attempts_run_out_then_dead_letters(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo", max_attempts=2))
    (job,) = store.claim("w1", 1, ["default"])
    assert store.fail("w1", job, "boom", permanent=False) is JobStatus.PENDING
    (job,) = store.claim("w1", 1, ["default"])
    assert job.attempt == 2
    assert store.fail("w1", job, "boom again", permanent=False) is JobStatus.FAILED
    failed = store.get_job(result.job_id)
    assert failed is not None and failed.error == "boom again" and failed.attempts == 2
    assert store.failed_ids("default", 10) == [result.job_id]


def test_a_permanent_failure_dead_letters_at_once(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo", max_attempts=5))
    (job,) = store.claim("w1", 1, ["default"])
    assert store.fail("w1", job, "bad input", permanent=True) is JobStatus.FAILED


def test_retry_backoff_grows_exponentially_and_is_capped(
    redis_client: redis.Redis, url: str
) -> None:
    store = _store(redis_client, url, RETRY_BACKOFF="1s", RETRY_BACKOFF_MAX="3s")
    result = store.enqueue(JobSpec(type="echo", max_attempts=10))
    ceilings = [1000, 2000, 3000, 3000]
    for ceiling in ceilings:
        redis_client.zadd(store.keys.scheduled("default"), {result.job_id: 0})
        store.promote()
        (job,) = store.claim("w1", 1, ["default"])
        now = store.server_time_ms()
        assert store.fail("w1", job, "x", permanent=False) is JobStatus.SCHEDULED
        scheduled = store.get_job(job.id)
        assert scheduled is not None and scheduled.run_at is not None
        assert 0 <= scheduled.run_at - now <= ceiling + 50


def test_cancel_withdraws_a_pending_job_and_asks_a_running_one_to_stop(store: JobStore) -> None:
    pending = store.enqueue(JobSpec(type="echo"))
    assert store.cancel(pending.job_id).status is JobStatus.CANCELLED
    assert store.queue_info("default").pending == 0
    store.enqueue(JobSpec(type="echo"))
    (running,) = store.claim("w1", 1, ["default"])
    asked = store.cancel(running.id)  # 202 at the API; the run ends cancelled when it stops
    assert asked.status is JobStatus.PROCESSING and asked.cancel_requested


def test_a_job_cancelled_after_a_worker_took_it_is_not_run(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo"))
    taken = store.take_blocking("w1", "default", 0.1)
    store.cancel(result.job_id)
    assert store.start("w1", str(taken), "default") is None
    assert store.get_status(result.job_id) is JobStatus.CANCELLED


def test_operator_retry_resets_attempts(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo", max_attempts=1))
    (job,) = store.claim("w1", 1, ["default"])
    store.fail("w1", job, "x", permanent=False)
    retried = store.retry(result.job_id)
    assert retried.status is JobStatus.PENDING and retried.attempts == 0
    assert store.failed_ids("default", 10) == []


def test_recovering_a_dead_worker_counts_the_attempt(store: JobStore) -> None:
    first = store.enqueue(JobSpec(type="echo", max_attempts=2))
    store.claim("w1", 1, ["default"])
    assert store.recover("w1") == (1, 0)
    store.claim("w2", 1, ["default"])
    assert store.recover("w2") == (0, 1)
    job = store.get_job(first.job_id)
    assert job is not None and job.status is JobStatus.FAILED and "died" in (job.error or "")


def test_jobs_that_ran_side_by_side_in_a_dead_worker_get_their_attempt_back(
    store: JobStore,
) -> None:
    ids = [store.enqueue(JobSpec(type="echo", max_attempts=1)).job_id for _ in range(3)]
    store.claim("w1", 3, ["default"])
    assert store.recover("w1") == (3, 0)  # any of them might have killed it: none is blamed
    for job in store.get_jobs(ids):
        assert job is not None and job.status is JobStatus.PENDING and job.attempts == 0


def test_a_recovered_job_waits_at_the_head_until_a_worker_is_idle(store: JobStore) -> None:
    suspect, other = (store.enqueue(JobSpec(type="echo")).job_id for _ in range(2))
    store.claim("w1", 2, ["default"])
    store.recover("w1")
    assert store.claim("w2", 2, ["default"], idle=False) == []  # busy worker: not beside others
    assert store.queue_info("default").pending == 2
    (job,) = store.claim("w2", 2, ["default"], idle=True)  # idle: it starts, and nothing else
    assert job.id == suspect and job.alone
    assert store.claim("w3", 2, ["default"], idle=False) == []  # `other` ran in w1 as well
    (job,) = store.claim("w3", 2, ["default"], idle=True)
    assert job.id == other and job.alone


def test_a_suspect_job_behind_others_ends_the_claim_after_them(store: JobStore) -> None:
    first = store.enqueue(JobSpec(type="echo")).job_id
    store.claim("w1", 1, ["default"])
    store.recover("w1")  # `first` is suspect now, at the head of the queue
    fresh = [store.enqueue(JobSpec(type="echo")).job_id for _ in range(2)]
    assert [j.id for j in store.claim("w2", 5, ["default"], idle=True)] == [first]
    assert [j.id for j in store.claim("w3", 5, ["default"], idle=True)] == fresh


def test_a_job_that_kills_its_worker_alone_uses_up_its_attempts(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo", max_attempts=2))
    store.enqueue(JobSpec(type="echo"))
    store.claim("w1", 2, ["default"])
    store.recover("w1")  # side by side: no attempt counted
    for worker, expected in (("w2", (1, 0)), ("w3", (0, 1))):
        (job,) = store.claim(worker, 2, ["default"], idle=True)
        assert job.id == result.job_id and job.alone
        assert store.recover(worker) == expected
    job_now = store.get_job(result.job_id)
    assert job_now is not None and job_now.status is JobStatus.FAILED
    assert job_now.attempts == 2 and "alone" in (job_now.error or "")


def test_release_requeues_without_using_an_attempt(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo"))
    store.claim("w1", 1, ["default"])
    assert store.release("w1") == 1
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.PENDING and job.attempts == 0


def test_an_overdue_job_is_reclaimed_as_a_failed_attempt(store: JobStore) -> None:
    result = store.enqueue(JobSpec(type="echo", timeout=0.05, max_attempts=3))
    store.claim("w1", 1, ["default"])
    time.sleep(0.1)
    assert store.reclaim(margin_ms=0) == 1
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.PENDING and "timed out" in (job.error or "")


def test_a_healthy_job_is_never_reclaimed(store: JobStore) -> None:
    store.enqueue(JobSpec(type="echo", timeout=60))
    store.claim("w1", 1, ["default"])
    assert store.reclaim(margin_ms=0) == 0


def test_delete_removes_a_terminal_job_and_refuses_a_live_one(store: JobStore) -> None:
    live = store.enqueue(JobSpec(type="echo"))
    with pytest.raises(InvalidTransitionError):
        store.delete(live.job_id)
    store.cancel(live.job_id)
    store.delete(live.job_id)
    assert store.get_job(live.job_id) is None
    assert store.list_jobs().jobs == []


def test_dead_letters_are_capped(redis_client: redis.Redis, url: str) -> None:
    store = _store(redis_client, url, DEAD_LETTER_MAX="3")
    for _ in range(5):
        store.enqueue(JobSpec(type="echo", max_attempts=1))
        (job,) = store.claim("w1", 1, ["default"])
        store.fail("w1", job, "x", permanent=True)
    assert store.queue_info("default").failed == 3


def test_listing_pages_through_a_batch_created_in_one_millisecond(store: JobStore) -> None:
    created = {r.job_id for r in store.enqueue_many([JobSpec(type="echo") for _ in range(120)])}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = store.list_jobs(limit=25, cursor=cursor)
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == created


def test_an_expiry_entry_due_before_its_record_expires_is_kept_for_a_later_prune(
    store: JobStore, redis_client: redis.Redis
) -> None:
    result = store.enqueue(JobSpec(type="echo"))
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, "1")
    redis_client.zadd(store.keys.expiries, {result.job_id: 0})  # due, record still there
    store.prune()
    score = redis_client.zscore(store.keys.expiries, result.job_id)
    assert score is not None and score > store.server_time_ms()  # moved to the real expiry
    redis_client.delete(store.keys.job(result.job_id))  # the record expires
    redis_client.zadd(store.keys.expiries, {result.job_id: 0})
    store.prune()
    assert redis_client.zscore(store.keys.jobs, result.job_id) is None


def test_a_full_lifecycle_leaves_only_documented_keys_and_expires_them(
    redis_client: redis.Redis, url: str
) -> None:
    store = _store(redis_client, url, RESULT_TTL="200ms")
    store.heartbeat("w1", "host", 1, ["default"], 1, 0)
    store.enqueue(JobSpec(type="echo"))
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, "1")
    store.release("w1")
    time.sleep(0.3)
    store.prune()
    assert sorted(redis_client.keys("*")) == [
        store.keys.events,  # capped by EVENTS_MAX, not expired (common/events.py)
        store.keys.inflight,
        store.keys.queues,
        store.keys.stats,
        store.keys.types("default"),
    ]


def test_a_job_that_killed_its_worker_still_runs_alone_after_an_operator_retry(
    store: JobStore,
) -> None:
    killer = store.enqueue(JobSpec(type="echo", max_attempts=1)).job_id
    store.claim("w1", 1, ["default"])
    assert store.recover("w1") == (0, 1)  # ran alone on its last attempt: failed
    store.retry(killer)
    bystander = store.enqueue(JobSpec(type="echo")).job_id
    assert store.claim("w2", 2, ["default"], idle=False) == []  # not beside other jobs
    (job,) = store.claim("w2", 2, ["default"], idle=True)
    assert job.id == killer and job.alone
    assert store.get_status(bystander) is JobStatus.PENDING
