"""Group commit (api.group_commit): enqueues waiting together share one call, and each request
gets the answer it would have got alone. Real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import pytest
import redis

from tests.conftest import make_settings
from tests.integration.api_fixtures import free_port
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_until
from workstream.api.group_commit import GROUP_MAX_JOBS, GroupCommitStore, GroupCommitter
from workstream.common.errors import QueueFullError
from workstream.common.jobs import EnqueueResult, JobSpec, new_job_id
from workstream.common.keys import Keys
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore

QUEUE = Keys("default").queue("default")
Send = Callable[[Sequence[JobSpec], Sequence[str]], list[EnqueueResult]]


class HeldSend:
    """Wraps a send: records each call's size; the first call waits for `release`, so the
    enqueues made meanwhile queue up behind it."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, specs: Sequence[JobSpec], job_ids: Sequence[str]) -> list[EnqueueResult]:
        self.sizes.append(len(specs))
        if len(self.sizes) == 1:
            self.entered.set()
            self.release.wait(timeout=10)
        return self.send(specs, job_ids)


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> Iterator[JobStore]:
    client = connect(settings, max_connections=8)
    yield JobStore(client, settings)
    client.close()


def enqueue_together(
    committer: GroupCommitter, held: HeldSend, specs: list[JobSpec]
) -> list[EnqueueResult | Exception]:
    """Enqueues a first job, then `specs` from one thread each while the first call is held;
    returns each spec's outcome, in order."""
    outcomes: list[EnqueueResult | Exception | None] = [None] * len(specs)

    def one(index: int) -> None:
        try:
            outcomes[index] = committer.enqueue(specs[index], new_job_id())
        except Exception as ex:
            outcomes[index] = ex

    def first_enqueue() -> None:
        try:
            committer.enqueue(JobSpec(type="first"), new_job_id())
        except Exception:  # the same error as the rest, checked through them
            pass

    first = threading.Thread(target=first_enqueue)
    first.start()
    assert held.entered.wait(timeout=10)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: committer.waiting() == len(specs), 10)
    held.release.set()
    for thread in [first, *threads]:
        thread.join(timeout=10)
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def test_enqueues_waiting_together_are_sent_as_one_call_and_each_gets_its_job(
    store: JobStore,
) -> None:
    held = HeldSend(store.enqueue_many)
    committer = GroupCommitter(held)
    specs = [JobSpec(type="echo", payload={"n": n}) for n in range(5)]
    try:
        outcomes = enqueue_together(committer, held, specs)
    finally:
        committer.close()
    assert held.sizes == [1, 5]
    assert all(isinstance(outcome, EnqueueResult) and outcome.created for outcome in outcomes)
    jobs = [store.get_job(outcome.job_id) for outcome in outcomes]  # type: ignore[union-attr]
    assert [job.payload if job else None for job in jobs] == [{"n": n} for n in range(5)]


def test_a_full_queue_judges_each_enqueue_of_a_group_alone(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="3")
    client = connect(settings, max_connections=8)
    held = HeldSend(JobStore(client, settings).enqueue_many)
    committer = GroupCommitter(held)
    try:
        specs = [JobSpec(type="echo", payload={"n": n}) for n in range(3)]
        outcomes = enqueue_together(committer, held, specs)
    finally:
        committer.close()
        client.close()
    # The first job took one place: of the three sent together two fit, each alone.
    assert sorted(type(outcome).__name__ for outcome in outcomes) == [
        "EnqueueResult",
        "EnqueueResult",
        "QueueFullError",
    ]
    assert redis_client.llen(QUEUE) == 3


def test_one_enqueues_failure_does_not_change_the_answers_of_the_rest_of_its_group(
    store: JobStore,
) -> None:
    def refuse_marked(specs: Sequence[JobSpec], job_ids: Sequence[str]) -> list[EnqueueResult]:
        if any(spec.type == "refused" for spec in specs):
            raise ValueError("this job cannot be stored")
        return store.enqueue_many(specs, job_ids)

    held = HeldSend(refuse_marked)
    committer = GroupCommitter(held)
    specs = [JobSpec(type="echo"), JobSpec(type="refused"), JobSpec(type="echo")]
    try:
        outcomes = enqueue_together(committer, held, specs)
    finally:
        committer.close()
    assert isinstance(outcomes[0], EnqueueResult) and outcomes[0].created
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], EnqueueResult) and outcomes[2].created


def test_redis_unavailable_is_the_answer_of_every_enqueue_of_the_group_in_one_call() -> None:
    down = make_settings(f"redis://127.0.0.1:{free_port()}/0")
    client = connect(down, max_connections=8)
    held = HeldSend(JobStore(client, down).enqueue_many)
    committer = GroupCommitter(held)
    try:
        outcomes = enqueue_together(committer, held, [JobSpec(type="echo") for _ in range(4)])
    finally:
        committer.close()
        client.close()
    assert all(isinstance(outcome, redis.exceptions.ConnectionError) for outcome in outcomes)
    assert held.sizes == [1, 4]  # one stall for the group, not one per request


def test_the_same_idempotency_key_twice_in_one_group_answers_both_with_the_first_job(
    store: JobStore,
) -> None:
    held = HeldSend(store.enqueue_many)
    committer = GroupCommitter(held)
    spec = JobSpec(type="echo", idempotency_key="order-7")
    try:
        outcomes = enqueue_together(committer, held, [spec, spec])
    finally:
        committer.close()
    assert held.sizes == [1, 2]
    first, second = sorted(outcomes, key=lambda o: not getattr(o, "created", False))
    assert isinstance(first, EnqueueResult) and isinstance(second, EnqueueResult)
    assert first.created and not second.created and second.job_id == first.job_id


def test_a_group_holds_at_most_group_max_jobs(store: JobStore) -> None:
    held = HeldSend(store.enqueue_many)
    committer = GroupCommitter(held)
    count = GROUP_MAX_JOBS + GROUP_MAX_JOBS // 2
    try:
        outcomes = enqueue_together(committer, held, [JobSpec(type="echo")] * count)
    finally:
        committer.close()
    assert held.sizes == [1, GROUP_MAX_JOBS, GROUP_MAX_JOBS // 2]
    assert all(isinstance(outcome, EnqueueResult) and outcome.created for outcome in outcomes)


def test_a_store_enqueue_goes_through_its_committer_and_returns_the_job(
    settings: Settings, redis_client: redis.Redis
) -> None:
    client = connect(settings, max_connections=8)
    store = GroupCommitStore(client, settings)
    try:
        job, created = store.submit(JobSpec(type="echo", payload={"a": 1}))
    finally:
        store.close()
        client.close()
    assert created and job.payload == {"a": 1}
    assert redis_client.lrange(QUEUE, 0, -1) == [job.id]


def test_an_enqueue_after_close_is_sent_alone(store: JobStore, redis_client: redis.Redis) -> None:
    sizes: list[int] = []

    def send(specs: Sequence[JobSpec], job_ids: Sequence[str]) -> list[EnqueueResult]:
        sizes.append(len(specs))
        return store.enqueue_many(specs, job_ids)

    committer = GroupCommitter(send)
    committer.close()
    result = committer.enqueue(JobSpec(type="echo"), new_job_id())
    assert result.created and sizes == [1]
    assert redis_client.llen(QUEUE) == 1


def test_a_full_queue_alone_is_that_enqueues_answer(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="1")
    client = connect(settings, max_connections=8)
    committer = GroupCommitter(JobStore(client, settings).enqueue_many)
    try:
        committer.enqueue(JobSpec(type="echo"), new_job_id())
        with pytest.raises(QueueFullError):
            committer.enqueue(JobSpec(type="echo"), new_job_id())
    finally:
        committer.close()
        client.close()
