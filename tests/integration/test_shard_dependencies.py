"""Dependencies across shards (QUEUE_SHARDS) on one standalone Redis holding several hash tags:
a child whose parent lives in another shard is linked to it by a hand-off (dep_link.lua) and
hears of its end by another (dep_settle.lua), each keyed on the pair and performed once by the
mover (common/outbox.py), however often it is repeated; until then the child waits."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from tests.integration.test_outbox import Died, _dying
from tests.support.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.common import shards as shards_module
from workstream.common.batches import BatchStore
from workstream.common.deps import parent_results
from workstream.common.errors import DependencyError
from workstream.common.jobs import JobSpec
from workstream.common.keys import Keys
from workstream.common.outbox import Outbox
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore, open_store
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

S = JobStatus
A = Keys("default", "a")


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(redis_server.url, QUEUE_SHARDS="emails:a,images:b")


@pytest.fixture
def store(redis_client: redis.Redis, settings: Settings) -> ShardedStore:
    return cast(ShardedStore, open_store(redis_client, settings))


@pytest.fixture
def outbox(redis_client: redis.Redis, settings: Settings) -> Outbox:
    return Outbox(redis_client, settings)


def _submit(store: ShardedStore, queue: str, *parents: str, **extra: Any) -> str:
    data: dict[str, Any] = {"type": "t", "queue": queue, **extra}
    if parents:
        data["depends_on"] = list(parents)
    return str(store.enqueue(JobSpec.from_mapping(data)).job_id)


def _run(store: ShardedStore, queue: str, job_id: str, *, fail: bool = False) -> None:
    """Claims the next job of `queue` in its shard, which must be `job_id`, and completes it
    (result: its id) or fails it for good."""
    shard = store.for_queue(queue)
    (job,) = shard.claim("w1", 1, [queue])
    assert job.id == job_id
    if fail:
        shard.fail("w1", job, "boom", permanent=True)
    else:
        shard.complete("w1", job, f'"{job_id}"')


def _move_all(outbox: Outbox) -> int:
    """Mover passes until nothing is owed (bounded); entries performed in all."""
    moved = 0
    for _ in range(20):
        report = outbox.move()
        moved += report.moved
        if outbox.owed() == 0:
            return moved
    raise AssertionError("the outbox did not drain")


def _status(store: ShardedStore, job_id: str) -> JobStatus | None:
    return store.get_status(job_id)


def test_a_child_waits_for_a_parent_in_another_shard_and_is_released_when_it_completes(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    child = _submit(store, "other", parent)
    assert parent.startswith("a:") and _status(store, child) is S.WAITING
    _move_all(outbox)  # linked: registered with the parent in shard a
    assert _status(store, child) is S.WAITING
    _run(store, "emails", parent)
    assert _status(store, child) is S.WAITING  # the news is owed, not yet delivered
    _move_all(outbox)
    assert _status(store, child) is S.PENDING
    _run(store, "other", child)


def test_a_child_reads_its_parents_results_from_their_shards(
    store: ShardedStore, outbox: Outbox, redis_client: redis.Redis
) -> None:
    in_a, at_home = _submit(store, "emails"), _submit(store, "other")
    child = _submit(store, "images", in_a, at_home)
    _run(store, "emails", in_a)
    _run(store, "other", at_home)
    _move_all(outbox)
    assert _status(store, child) is S.PENDING
    keys = store.for_queue("images").keys
    assert parent_results(redis_client, keys, child) == {in_a: in_a, at_home: at_home}


def test_a_parent_that_completed_before_the_link_releases_the_child_through_it(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    child = _submit(store, "other", parent)
    _run(store, "emails", parent)  # ends before the mover links the child
    _move_all(outbox)  # the link finds it ended and owes the settle at once
    assert _status(store, child) is S.PENDING


def test_a_parent_already_completed_at_submission_still_goes_through_the_link(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    _run(store, "emails", parent)
    child = _submit(store, "other", parent)
    assert _status(store, child) is S.WAITING  # its shard cannot read the parent's
    _move_all(outbox)
    assert _status(store, child) is S.PENDING


def test_a_failed_parent_cancels_its_children_across_shards_and_the_cascade_comes_back(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    child = _submit(store, "other", parent)  # default shard
    grandchild = _submit(store, "other", child)  # same shard as its parent
    great = _submit(store, "emails", grandchild)  # back in shard a
    _move_all(outbox)
    _run(store, "emails", parent, fail=True)
    _move_all(outbox)
    for job_id in (child, grandchild, great):
        job = store.get_job(job_id)
        assert job is not None and job.status is S.CANCELLED
    assert store.get_job(child).error == f"parent_failed: {parent}"  # type: ignore[union-attr]
    assert store.get_job(great).error == f"parent_failed: {grandchild}"  # type: ignore[union-attr]


def test_on_parent_failure_run_releases_a_child_whose_remote_parent_failed(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    child = _submit(store, "other", parent, on_parent_failure="run")
    _run(store, "emails", parent, fail=True)
    _move_all(outbox)
    assert _status(store, child) is S.PENDING


def test_a_fan_in_over_three_shards_waits_for_the_last_parent(
    store: ShardedStore, outbox: Outbox
) -> None:
    parents = {"emails": _submit(store, "emails"), "images": _submit(store, "images")}
    parents["other"] = _submit(store, "other")
    join = _submit(store, "emails", *parents.values())
    _move_all(outbox)
    for queue, parent in parents.items():
        assert _status(store, join) is S.WAITING
        _run(store, queue, parent)
        _move_all(outbox)
    assert _status(store, join) is S.PENDING


def test_a_mover_dying_after_a_link_links_the_child_once(
    store: ShardedStore, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = _submit(store, "emails")
    child = _submit(store, "other", parent)
    _dying(outbox, monkeypatch)
    with pytest.raises(Died):
        outbox.move()  # linked in shard a; the entry was not removed
    _move_all(outbox)  # performed again: the mark says done
    parent_job = store.get_job(parent)
    assert parent_job is not None and parent_job.children == [child]
    _run(store, "emails", parent)
    _move_all(outbox)
    assert _status(store, child) is S.PENDING


def test_a_mover_dying_after_a_settle_brings_the_child_one_step_nearer_once(
    store: ShardedStore, outbox: Outbox, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    """A repeated settle must not count the same parent twice: the child has two parents, and
    a double count would release it before the second ends."""
    first, second = _submit(store, "emails"), _submit(store, "emails")
    child = _submit(store, "other", first, second)
    _move_all(outbox)
    _run(store, "emails", first)
    _dying(outbox, monkeypatch)
    with pytest.raises(Died):
        outbox.move()
    _move_all(outbox)
    assert _status(store, child) is S.WAITING
    assert redis_client.hget(Keys("default").job(child), "parents_left") == "1"
    _run(store, "emails", second)
    _move_all(outbox)
    assert _status(store, child) is S.PENDING


def test_a_remote_parent_whose_record_is_gone_at_the_link_cancels_the_child(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    _run(store, "emails", parent)
    child = _submit(store, "other", parent)
    store.delete(parent)  # deleted before the mover links the child
    _move_all(outbox)
    job = store.get_job(child)
    assert job is not None and job.status is S.CANCELLED
    assert job.error == f"parent_failed: {parent}"


def test_an_unknown_parent_is_refused_even_when_it_looks_like_another_shards(
    store: ShardedStore, redis_client: redis.Redis
) -> None:
    ghost = "a:" + "0" * 32
    with pytest.raises(DependencyError) as refused:
        _submit(store, "other", ghost)
    assert refused.value.code == "unknown_parents" and refused.value.ids == [ghost]
    assert store.stats().get("created|other|t", 0) == 0
    assert redis_client.zcard(Keys("default").outbox) == 0


def test_a_remote_parent_at_max_dependents_takes_no_more(
    store: ShardedStore, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setattr(shards_module, "MAX_DEPENDENTS", 2)
    parent = _submit(store, "emails")
    redis_client.hset(A.job(parent), "children_count", 2)
    with pytest.raises(DependencyError) as refused:
        _submit(store, "other", parent)
    assert refused.value.code == "too_many_dependents" and refused.value.ids == [parent]


def test_a_batch_member_may_wait_for_a_parent_in_another_shard(
    store: ShardedStore, outbox: Outbox, settings: Settings, redis_client: redis.Redis
) -> None:
    parent = _submit(store, "emails")
    member = JobSpec.from_mapping({"type": "t", "queue": "other", "depends_on": [parent]})
    batches = BatchStore(store)
    batch_id, (result,) = batches.create([member], sealed=True)
    assert result.status is S.WAITING
    _run(store, "emails", parent)
    _move_all(outbox)
    assert _status(store, result.job_id) is S.PENDING
    _run(store, "other", result.job_id)
    batch = batches.require(batch_id)
    assert batch.state == "settled" and batch.completed == 1


def test_cancelling_a_child_before_its_remote_parent_ends_leaves_it_cancelled(
    store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    child = _submit(store, "other", parent)
    _move_all(outbox)
    store.cancel(child)
    _run(store, "emails", parent)
    _move_all(outbox)
    assert _status(store, child) is S.CANCELLED


def test_a_plain_job_store_in_one_shard_cannot_be_given_remote_parents_by_mistake(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """Without ShardedStore (a worker's JobStore of one shard) a parent of another shard is
    unknown there: refused, never silently waited for."""
    home = JobStore(redis_client, settings)
    parent = _submit(cast(ShardedStore, open_store(redis_client, settings)), "emails")
    spec = dataclasses.replace(JobSpec(type="t", queue="other"), depends_on=(parent,))
    with pytest.raises(DependencyError) as refused:
        home.enqueue(spec)
    assert refused.value.code == "unknown_parents"


@pytest.fixture
def api(store: ShardedStore, settings: Settings) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(settings, store))


def test_post_jobs_accepts_a_parent_in_another_shard_and_answers_waiting(
    api: falcon.testing.TestClient, outbox: Outbox
) -> None:
    parent = api.simulate_post("/jobs", json={"type": "t", "queue": "emails"}).json["id"]
    answer = api.simulate_post("/jobs", json={"type": "t", "depends_on": [parent]})
    assert answer.status_code == 201 and answer.json["status"] == "waiting"
    _move_all(outbox)
    shown = api.simulate_get(f"/jobs/{parent}").json
    assert shown["children"] == [answer.json["id"]] and shown["children_count"] == 1


def test_post_jobs_names_an_unknown_parent_of_a_named_shards_form(
    api: falcon.testing.TestClient,
) -> None:
    ghost = "b:" + "f" * 32
    answer = api.simulate_post(
        "/jobs", json={"type": "t", "queue": "emails", "depends_on": [ghost]}
    )
    assert answer.status_code == 400
    assert (
        answer.json["error"]["code"] == "unknown_parents"
        and ghost in answer.json["error"]["message"]
    )


def test_a_leased_child_in_a_named_shard_carries_its_remote_parents_result(
    api: falcon.testing.TestClient, store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "other")
    child = _submit(store, "emails", parent)
    _run(store, "other", parent)
    _move_all(outbox)
    body = {"queues": ["emails"], "consumer": "c1", "lease_s": 30}
    (lease,) = api.simulate_post("/leases", json=body).json["leases"]
    assert lease["job"]["id"] == child and lease["parent_results"] == {parent: parent}


def test_metrics_show_each_shards_owed_hand_offs_until_the_mover_performs_them(
    api: falcon.testing.TestClient, store: ShardedStore, outbox: Outbox
) -> None:
    parent = _submit(store, "emails")
    _submit(store, "other", parent)  # owes a link from the default shard to shard a
    text = api.simulate_get("/metrics").text
    assert 'workstream_outbox_owed{shard=""} 1.0' in text
    assert 'workstream_outbox_owed{shard="a"} 0.0' in text
    figures = api.simulate_get("/metrics", headers={"Accept": "application/json"}).json
    assert figures["outbox"][""]["owed"] == 1 and figures["outbox"][""]["oldest_due_seconds"] >= 0
    _move_all(outbox)
    assert 'workstream_outbox_owed{shard=""} 0.0' in api.simulate_get("/metrics").text
