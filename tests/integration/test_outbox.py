"""Hand-offs between shards (common/outbox.py) on one standalone Redis holding several hash
tags (QUEUE_SHARDS): work a script owes in another shard is appended to its own shard's outbox
in the same call, and the mover performs it there once, however often it is repeated."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import orjson
import pytest
import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.common.batches import BatchStore
from workstream.common.jobs import JobSpec
from workstream.common.keys import Keys
from workstream.common.outbox import RETRY_MS, Outbox, open_outbox
from workstream.common.schedules import ScheduleStore, run_job_id
from workstream.common.settings import Settings
from workstream.common.shards import open_store
from workstream.common.store import JobStore
from workstream.worker.background import scheduler_step

LONG = timedelta(seconds=5)  # a loaded machine's replica is slow to confirm
A = Keys("default", "a")
HOME = Keys("default")


def sharded(server: RedisServer) -> Settings:
    return make_settings(server.url, QUEUE_SHARDS="emails:a,images:b")


def _every_second(schedules: ScheduleStore, start_ms: int) -> int:
    """A schedule `tick` for queue emails (shard a) every second; its first due run."""
    schedules.put(
        "tick", {"every": "1s", "job": {"type": "t", "queue": "emails", "payload": {"n": 1}}},
        now_ms=start_ms,
    )  # fmt: skip
    return int(schedules.redis.hget(HOME.schedule("tick"), "next_run_at") or 0)


class Died(Exception):
    """Stands for a mover process killed between the target's write and the entry's removal."""


def _dying(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox's next removal of a performed entry dies instead (the target already wrote)."""
    done = outbox._done

    def die(source: str, raw: str, due_again_ms: int) -> None:
        if due_again_ms == 0:
            monkeypatch.setattr(outbox, "_done", done)
            raise Died(raw)
        done(source, raw, due_again_ms)

    monkeypatch.setattr(outbox, "_done", die)


def _runs(client: redis.Redis) -> list[str]:
    return [str(job_id) for job_id in client.lrange(A.queue("emails"), 0, -1)]


def test_without_queue_shards_there_is_no_mover_and_a_run_writes_no_outbox(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url)
    assert open_outbox(redis_client, settings) is None
    schedules = ScheduleStore(redis_client, settings)
    due = _every_second(schedules, 1_000_000)
    assert schedules.fire_due(now_ms=due).fired == 1
    assert not redis_client.exists(HOME.outbox, HOME.outbox_body)


def test_a_run_for_a_named_shard_is_owed_in_the_outbox_then_created_there_once(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = sharded(redis_server)
    schedules, outbox = ScheduleStore(redis_client, settings), Outbox(redis_client, settings)
    due = _every_second(schedules, 1_000_000)
    assert schedules.fire_due(now_ms=due).fired == 1
    job_id = f"a:{run_job_id('default', 'tick', due)}"
    assert not redis_client.exists(A.job(job_id)) and outbox.owed() == 1
    assert schedules.get("tick")["last_job_id"] == job_id
    assert outbox.move().moved == 1
    job = JobStore(redis_client, settings, "a").get_job(job_id)
    assert job is not None
    assert (job.status.value, job.queue, job.payload) == ("pending", "emails", {"n": 1})
    assert _runs(redis_client) == [job_id] and outbox.owed() == 0
    assert outbox.move().moved == 0  # nothing owed any more: nothing done again
    assert redis_client.hget(A.stats, "created|emails|t") == "1"


def test_a_mover_dying_after_the_target_write_is_repeated_without_a_second_job(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sharded(redis_server)
    schedules, outbox = ScheduleStore(redis_client, settings), Outbox(redis_client, settings)
    schedules.fire_due(now_ms=_every_second(schedules, 1_000_000))
    _dying(outbox, monkeypatch)
    with pytest.raises(Died):
        outbox.move()
    assert len(_runs(redis_client)) == 1 and outbox.owed() == 1  # written, not yet removed
    # The job ran and its record expired before the repeat: the done mark still holds.
    redis_client.delete(A.job(_runs(redis_client)[0]))
    report = Outbox(redis_client, settings).move()  # another process's mover
    assert (report.moved, outbox.owed()) == (1, 0)
    assert len(_runs(redis_client)) == 1
    assert redis_client.hget(A.stats, "created|emails|t") == "1"


def test_an_entry_survives_the_targets_error_reply_and_is_created_once_later(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = sharded(redis_server)
    schedules, outbox = ScheduleStore(redis_client, settings), Outbox(redis_client, settings)
    due = _every_second(schedules, 1_000_000)
    schedules.fire_due(now_ms=due)
    redis_client.set(A.queue("emails"), "hand-edited")  # LPUSH there would be WRONGTYPE
    report = outbox.move()
    assert (report.moved, report.deferred, outbox.owed()) == (0, 1, 1)
    assert not redis_client.exists(A.job(f"a:{run_job_id('default', 'tick', due)}"))
    redis_client.delete(A.queue("emails"))
    assert outbox.move().moved == 0  # deferred: not due again yet
    now = int(redis_client.time()[0]) * 1000
    assert outbox.move(now_ms=now + RETRY_MS + 1000).moved == 1
    assert len(_runs(redis_client)) == 1 and outbox.owed() == 0


def test_a_simulated_series_of_runs_is_created_exactly_once_with_movers_dying_half_way(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 due runs a second apart (the firers' clock simulated; the movers use Redis time, as
    the entries do), two firers and two movers each tick; every fifth tick a
    mover dies between the target's write and the removal. Every run is one job in shard a."""
    settings = sharded(redis_server)
    firers = [ScheduleStore(redis_client, settings) for _ in range(2)]
    movers = [Outbox(redis_client, settings) for _ in range(2)]
    first = _every_second(firers[0], 1_000_000)
    dues = [first + 1000 * i for i in range(60)]
    for tick, now in enumerate(dues):
        for firer in firers:
            firer.fire_due(now_ms=now)
        if tick % 5 == 0:
            _dying(movers[0], monkeypatch)
            with pytest.raises(Died):
                movers[0].move()
        movers[1].move()
    expected = {f"a:{run_job_id('default', 'tick', due)}" for due in dues}
    runs = _runs(redis_client)
    assert len(runs) == len(dues) and set(runs) == expected
    assert redis_client.hget(A.stats, "created|emails|t") == str(len(dues))
    assert Outbox(redis_client, settings).owed() == 0


def test_the_scheduler_duty_fires_and_moves_a_run_into_its_shard(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = sharded(redis_server)
    schedules = ScheduleStore(redis_client, settings)
    now = int(redis_client.time()[0]) * 1000
    _every_second(schedules, now - 5000)  # due already
    step = scheduler_step(JobStore(redis_client, settings, "b"))  # a worker of another shard
    step()
    runs = _runs(redis_client)
    assert len(runs) == 1 and runs[0].startswith("a:")
    assert Outbox(redis_client, settings).owed() == 0


def test_the_apis_scheduler_duty_fires_and_moves_too(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """The API runs scheduler_step over its ShardedStore (api/__main__.py)."""
    settings = sharded(redis_server)
    schedules = ScheduleStore(redis_client, settings)
    _every_second(schedules, int(redis_client.time()[0]) * 1000 - 5000)
    scheduler_step(open_store(redis_client, settings))()
    assert len(_runs(redis_client)) == 1 and Outbox(redis_client, settings).owed() == 0


def test_a_batch_callback_for_a_named_shard_is_created_there_once_after_settling(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch (default shard) settles when its last member ends; its on_complete and
    on_success for queue emails (shard a) are owed in the same script and moved there, once
    even when the mover dies between the target's write and the removal."""
    settings = sharded(redis_server)
    home = JobStore(redis_client, settings)
    batches = BatchStore(home)
    report = JobSpec(type="report", queue="emails", payload={"to": "ops"})
    batch_id, _ = batches.create(
        [JobSpec(type="t"), JobSpec(type="t")], sealed=True, on_complete=report, on_success=report
    )
    assert not redis_client.exists(A.queues)  # nothing registered in shard a before it is owed
    for member in home.claim("w1", 10, ["default"]):
        home.complete("w1", member, "{}")
    batch = batches.require(batch_id)
    assert batch.state == "settled"
    outbox = Outbox(redis_client, settings)
    assert outbox.owed() == 2 and _runs(redis_client) == []
    _dying(outbox, monkeypatch)
    with pytest.raises(Died):
        outbox.move()
    assert Outbox(redis_client, settings).move().moved == 2  # one repeated, one new
    shard_a = JobStore(redis_client, settings, "a")
    callbacks = {job_id: shard_a.get_job(job_id) for job_id in _runs(redis_client)}
    assert set(callbacks) == {
        orjson.loads(redis_client.hget(HOME.batch(batch_id), which) or "{}")["id"]
        for which in ("on_complete", "on_success")
    }
    for job in callbacks.values():
        assert job is not None and job.id.startswith("a:") and job.type == "report"
        assert job.payload["to"] == "ops" and job.payload["batch"]["completed"] == 2
    assert redis_client.hget(A.stats, "created|emails|report") == "2"
    assert redis_client.smembers(A.queues) == {"emails"}
    assert not redis_client.sismember(HOME.queues, "emails")


def test_with_replicated_durability_an_entry_is_let_go_only_once_a_replica_has_the_job(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """DURABILITY=replicated: the mover WAITs after the target's write; with no replica to
    confirm it the entry stays owed (the job exists once); once a replica has synced, the
    repeat's WAIT covers the job and the entry is removed."""
    settings = make_settings(
        redis_server.url, QUEUE_SHARDS="emails:a", DURABILITY="replicated",
        REPLICA_ACKS="1", REPLICA_ACK_TIMEOUT="100ms",
    )  # fmt: skip
    schedules, outbox = ScheduleStore(redis_client, settings), Outbox(redis_client, settings)
    schedules.fire_due(now_ms=_every_second(schedules, 1_000_000))
    report = outbox.move()
    assert (report.moved, report.deferred, outbox.owed()) == (0, 1, 1)
    assert len(_runs(redis_client)) == 1
    redis_client.config_set("repl-diskless-sync-delay", 0)  # the replica syncs at once
    replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(redis_server.port)))
    replica.start()
    try:
        deadline = time.monotonic() + 10
        while replica.client().info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        now = int(redis_client.time()[0]) * 1000
        patient = Outbox(redis_client, dataclasses.replace(settings, replica_ack_timeout=LONG))
        assert patient.move(now_ms=now + RETRY_MS + 1000).moved == 1
        assert outbox.owed() == 0 and len(_runs(redis_client)) == 1
        assert replica.client().exists(A.job(_runs(redis_client)[0]))
    finally:
        replica.stop()
