"""Schedules on a real redis-server: each due run is enqueued exactly once however many firers
call the fire path, the missed-run policies after downtime, pause, bounds. The clock is moved
by passing `now_ms` to the fire path, so no test waits for a run to fall due."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis
from cronsim import CronSim

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.common.jobs import JobSpec, is_job_id
from workstream.common.schedules import (
    ScheduleStore,
    Timing,
    TooManySchedulesError,
    run_job_id,
)
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

SECOND = 1000


@pytest.fixture
def schedules(settings: Settings, redis_client: redis.Redis) -> ScheduleStore:
    return ScheduleStore(redis_client, settings)


def _every(seconds: int, **extra: Any) -> dict[str, Any]:
    return {"every": f"{seconds}s", "job": {"type": "echo", "payload": {"n": 1}}, **extra}


def _next_ms(schedules: ScheduleStore, schedule_id: str) -> int:
    return int(schedules.redis.hget(schedules.keys.schedule(schedule_id), "next_run_at") or 0)


def _jobs(store: JobStore) -> list[str]:
    return sorted(cast(list[str], store.redis.zrange(store.keys.jobs, 0, -1)))


def test_a_due_run_is_enqueued_as_a_pending_job_and_the_schedule_advances(
    schedules: ScheduleStore, store: JobStore
) -> None:
    schedules.put("tick", _every(10))
    due = _next_ms(schedules, "tick")

    assert schedules.fire_due(now_ms=due - 1).fired == 0
    report = schedules.fire_due(now_ms=due)

    assert report.fired == 1 and report.next_due_ms == due + 10 * SECOND
    job_id = run_job_id(store.settings.namespace, "tick", due)
    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.PENDING
    assert (job.type, job.queue, job.payload) == ("echo", "default", {"n": 1})
    assert store.redis.lrange(store.keys.queue("default"), 0, -1) == [job_id]
    shown = schedules.get("tick")
    assert shown["last_job_id"] == job_id and shown["runs"] == 1
    assert _next_ms(schedules, "tick") == due + 10 * SECOND
    (claimed,) = store.claim("w1", 1, ["default"])  # an ordinary job from here on
    assert claimed.id == job_id


def test_a_run_carries_the_templates_priority_and_is_claimed_before_plain_jobs(
    schedules: ScheduleStore, store: JobStore
) -> None:
    store.enqueue(JobSpec(type="echo", payload={"plain": True}))
    schedules.put("urgent", _every(10, job={"type": "echo", "payload": {}, "priority": 7}))
    due = _next_ms(schedules, "urgent")

    assert schedules.fire_due(now_ms=due).fired == 1

    job_id = run_job_id(store.settings.namespace, "urgent", due)
    job = store.get_job(job_id)
    assert job is not None and job.priority == 7
    assert schedules.get("urgent")["job"]["priority"] == 7
    (claimed,) = store.claim("w1", 1, ["default"])
    assert claimed.id == job_id


def test_firing_the_same_run_again_is_a_no_op(schedules: ScheduleStore, store: JobStore) -> None:
    schedules.put("tick", _every(10))
    due = _next_ms(schedules, "tick")
    schedules.fire_due(now_ms=due)

    assert schedules.fire_due(now_ms=due).fired == 0
    assert schedules.fire_due(now_ms=due + 5 * SECOND).fired == 0
    assert len(_jobs(store)) == 1


def test_concurrent_firers_enqueue_each_due_run_exactly_once(
    redis_server: RedisServer, settings: Settings, redis_client: redis.Redis, store: JobStore
) -> None:
    firers, steps = 8, 20
    ScheduleStore(redis_client, settings).put("tick", _every(1))
    ScheduleStore(redis_client, settings).put("tock", _every(2))
    start = _next_ms(ScheduleStore(redis_client, settings), "tick")
    barrier = threading.Barrier(firers)
    fired = [0] * firers
    errors: list[BaseException] = []

    def fire(index: int) -> None:
        client = redis_server.client()  # a connection each: really concurrent script calls
        try:
            mine = ScheduleStore(client, settings)
            for step in range(steps):
                barrier.wait(timeout=10)  # every firer at the same due time at once
                fired[index] += mine.fire_due(now_ms=start + step * SECOND).fired
        except BaseException as ex:
            errors.append(ex)
            barrier.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(firers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    tock_start = start + SECOND  # put one call later: its first run may differ by the put gap
    expected_tick = {run_job_id("default", "tick", start + s * SECOND) for s in range(steps)}
    created = set(_jobs(store))
    assert expected_tick <= created
    assert sum(fired) == len(created)  # no run counted twice
    tock = created - expected_tick
    assert 9 <= len(tock) <= 10 and all(is_job_id(job_id) for job_id in tock), tock_start
    assert int(store.stats()["created|default|echo"]) == len(created)


def test_a_simulated_hour_with_three_firers_one_stopping_enqueues_every_run_once(
    redis_server: RedisServer, settings: Settings, redis_client: redis.Redis, store: JobStore
) -> None:
    """An hour of 5 s ticks (the clock moved, not waited for) by three firers at once; one
    stops at the half hour. Every due run of four schedules is enqueued exactly once."""
    definitions = {
        "ten-seconds": {"every": "10s"},
        "minute": {"every": "1m"},
        "five-minutes": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"},
        "hourly": {"cron": "0 * * * *"},
    }
    start = ScheduleStore(redis_client, settings).server_time_ms()
    for name, timing in definitions.items():
        body = {**timing, "job": {"type": "echo"}}
        ScheduleStore(redis_client, settings).put(name, body, now_ms=start)
    end, step, steps = start + 3600 * SECOND, 5 * SECOND, 720
    phases = [threading.Barrier(3), threading.Barrier(2)]  # all three, then two
    errors: list[BaseException] = []

    def fire(index: int) -> None:
        client = redis_server.client()
        try:
            mine = ScheduleStore(client, settings)
            for tick in range(1, steps + 1):
                half = tick > steps // 2
                if half and index == 0:
                    return  # this firer stops (its process died) at the half hour
                phases[half].wait(timeout=20)
                mine.fire_due(now_ms=start + tick * step)
        except BaseException as ex:
            errors.append(ex)
            for barrier in phases:
                barrier.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    expected = {
        "ten-seconds": set(range(start + 10 * SECOND, end + 1, 10 * SECOND)),
        "minute": set(range(start + 60 * SECOND, end + 1, 60 * SECOND)),
        "five-minutes": _cron_runs("*/5 * * * *", "Europe/Berlin", start, end),
        "hourly": _cron_runs("0 * * * *", "UTC", start, end),
    }
    pipe = store.redis.pipeline(transaction=False)
    for job_id in _jobs(store):
        pipe.hmget(store.keys.job(job_id), ["schedule_id", "scheduled_for"])
    runs: dict[str, list[int]] = {name: [] for name in definitions}
    for owner, scheduled_for in pipe.execute():
        runs[owner].append(int(scheduled_for))
    for name in definitions:
        assert sorted(runs[name]) == sorted(expected[name]), name  # each once, none left out
    assert len(runs["ten-seconds"]) == 360 and len(runs["five-minutes"]) == 12


def _cron_runs(cron: str, zone: str, start: int, end: int) -> set[int]:
    """The cron's run times in (start, end], enumerated by cronsim itself."""
    found: set[int] = set()
    for when in CronSim(cron, datetime.fromtimestamp(start / 1000, ZoneInfo(zone))):
        ms = int(when.timestamp() * 1000)
        if ms > end:
            return found
        found.add(ms)
    return found


def test_run_once_after_downtime_enqueues_one_run_then_keeps_the_beat(
    schedules: ScheduleStore, store: JobStore
) -> None:
    schedules.put("tick", _every(1))
    due = _next_ms(schedules, "tick")
    back = due + 30 * SECOND + 500  # 30 runs fell due while nothing fired

    assert schedules.fire_due(now_ms=back).fired == 1
    assert _jobs(store) == [run_job_id("default", "tick", due)]
    assert _next_ms(schedules, "tick") == due + 31 * SECOND  # the next on the beat after now
    assert schedules.fire_due(now_ms=back).fired == 0
    assert schedules.fire_due(now_ms=due + 31 * SECOND).fired == 1
    assert len(_jobs(store)) == 2


def test_skip_after_downtime_enqueues_nothing_for_the_missed_window(
    schedules: ScheduleStore, store: JobStore
) -> None:
    schedules.put("tick", _every(1, missed="skip"))
    due = _next_ms(schedules, "tick")

    report = schedules.fire_due(now_ms=due + 30 * SECOND + 500)

    assert (report.fired, report.skipped) == (0, 1)
    assert _jobs(store) == []
    assert _next_ms(schedules, "tick") == due + 31 * SECOND
    assert schedules.fire_due(now_ms=due + 31 * SECOND).fired == 1
    assert schedules.get("tick")["skipped"] == 1


def test_a_run_fired_late_within_its_interval_is_not_missed(
    schedules: ScheduleStore, store: JobStore
) -> None:
    schedules.put("tick", _every(10, missed="skip"))
    due = _next_ms(schedules, "tick")

    assert schedules.fire_due(now_ms=due + 9 * SECOND).fired == 1


def test_a_paused_schedule_never_fires_and_resumes_from_now(
    schedules: ScheduleStore, store: JobStore
) -> None:
    schedules.put("tick", _every(1))
    due = _next_ms(schedules, "tick")
    assert schedules.pause("tick")["next_run_at"] is None

    assert schedules.fire_due(now_ms=due + 60 * SECOND).fired == 0
    shown = schedules.resume("tick")

    assert shown["paused"] is False and _next_ms(schedules, "tick") >= due
    assert schedules.fire_due(now_ms=_next_ms(schedules, "tick")).fired == 1
    assert len(_jobs(store)) == 1


def test_a_put_with_the_same_timing_keeps_the_run_already_due(schedules: ScheduleStore) -> None:
    schedules.put("tick", _every(60))
    due = _next_ms(schedules, "tick")

    _, created = schedules.put("tick", _every(60, job={"type": "other"}))

    assert created is False and _next_ms(schedules, "tick") == due
    assert schedules.get("tick")["job"]["type"] == "other"


def test_a_run_refused_on_every_tick_is_logged_once(
    redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="1")
    JobStore(redis_client, settings).enqueue(JobSpec(type="echo"))
    schedules = ScheduleStore(redis_client, settings)
    schedules.put("tick", _every(1))
    due = _next_ms(schedules, "tick")

    for _ in range(5):
        schedules.fire_due(now_ms=due)

    refused = [r for r in caplog.records if r.getMessage() == "schedule.refused"]
    assert len(refused) == 1 and getattr(refused[0], "reason", None) == "queue_full"


def test_a_full_queue_leaves_the_run_due_and_writes_no_job(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="1")
    store, schedules = JobStore(redis_client, settings), ScheduleStore(redis_client, settings)
    store.enqueue(JobSpec(type="echo"))
    schedules.put("tick", _every(1))
    due = _next_ms(schedules, "tick")

    assert schedules.fire_due(now_ms=due).fired == 0
    assert _next_ms(schedules, "tick") == due  # tried again on the next tick
    store.claim("w1", 1, ["default"])
    assert schedules.fire_due(now_ms=due).fired == 1


def test_runs_that_stay_due_do_not_hold_back_the_schedules_behind_them(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="1")
    store, schedules = JobStore(redis_client, settings), ScheduleStore(redis_client, settings)
    store.enqueue(JobSpec(type="echo", queue="full"))
    start = schedules.server_time_ms()
    for name in ("stuck-a", "stuck-b"):  # due first, into a full queue
        schedules.put(name, _every(1, job={"type": "echo", "queue": "full"}), now_ms=start)
    schedules.put("behind", _every(1), now_ms=start + 1)

    report = schedules.fire_due(now_ms=start + 1001, limit=2)  # pages of two

    assert report.fired == 1 and not report.more
    assert store.redis.llen(store.keys.queue("default")) == 1
    assert _next_ms(schedules, "stuck-a") == start + 1000  # still due, tried again next tick


def test_past_max_schedules_a_new_one_is_refused_and_nothing_is_written(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, MAX_SCHEDULES="2")
    schedules = ScheduleStore(redis_client, settings)
    schedules.put("a", _every(1))
    schedules.put("b", _every(1))

    with pytest.raises(TooManySchedulesError):
        schedules.put("c", _every(1))
    schedules.put("b", _every(5))  # replacing one is not a new one
    assert [s["id"] for s in schedules.list()] == ["a", "b"]
    assert not redis_client.exists(schedules.keys.schedule("c"))


def test_delete_removes_every_key_of_the_schedule(schedules: ScheduleStore) -> None:
    schedules.put("tick", _every(1))

    schedules.delete("tick")

    assert schedules.redis.keys("*schedule*") == []


def test_cron_runs_follow_the_time_zone_across_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    before = int(datetime(2026, 3, 27, 12, 0, tzinfo=berlin).timestamp() * 1000)

    first = timing.after(before)
    skipped_hour = timing.after(first)  # 02:30 does not exist on 29 March in Berlin

    assert datetime.fromtimestamp(first / 1000, berlin).isoformat() == "2026-03-28T02:30:00+01:00"
    assert (
        datetime.fromtimestamp(skipped_hour / 1000, berlin).isoformat()
        == "2026-03-29T03:00:00+02:00"
    )


def test_a_cron_run_in_the_repeated_autumn_hour_runs_once() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    before = int(datetime(2026, 10, 24, 12, 0, tzinfo=berlin).timestamp() * 1000)

    first = timing.after(before)
    following = timing.after(first)

    assert datetime.fromtimestamp(first / 1000, berlin).isoformat() == "2026-10-25T02:30:00+02:00"
    assert (
        datetime.fromtimestamp(following / 1000, berlin).isoformat() == "2026-10-26T02:30:00+01:00"
    )
