"""A model of schedules, checked against schedule_put.lua and schedule_fire.lua on a real
redis-server: puts, pauses, resumes, deletes and fires interleaved at random on a moved
clock, including firers that act on what they read several steps earlier (the race the
compare-and-set exists for). After every step each schedule's due time and every run's job
agree with the model: a run enqueued at most once, none lost, the indexes and counters in
step with the jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.redis_server import RedisServer
from workstream.common.schedules import MISSED_AFTER_MS, ScheduleStore
from workstream.common.settings import Settings
from workstream.common.states import JobStatus

IDS = ("a", "b", "c")
SECOND = 1000
START_MS = 1_800_000_000_000


@dataclass
class Model:
    every_ms: int
    missed: str
    paused: bool
    next_ms: int | None
    revision: int = 0  # bumped by every write, never reused (as the script's)
    runs: set[int] = field(default_factory=set)


@dataclass
class Read:
    """What a firer read (ZRANGEBYSCORE + HGETALL), to act on later."""

    schedule_id: str
    data: dict[str, str]
    revision: int
    incarnation: int


class ScheduleMachine(RuleBasedStateMachine):
    server: RedisServer

    def __init__(self) -> None:
        super().__init__()
        self.client: redis.Redis = self.server.client()
        self.client.flushall()
        env = {"REDIS_URL": self.server.url, "MAX_SCHEDULES": "2"}
        self.store = ScheduleStore(self.client, Settings.from_environ(env))
        self.clock = START_MS  # fixed, so a failing example replays the same
        self.model: dict[str, Model] = {}
        self.gone_runs: dict[str, set[int]] = {id_: set() for id_ in IDS}  # deleted ones' jobs
        self.incarnation = dict.fromkeys(IDS, 0)
        self.reads: list[Read] = []

    def _fire_model(self, s: Model) -> None:
        """What firing a due schedule does (common/schedules.py's policy)."""
        assert s.next_ms is not None and s.next_ms <= self.clock
        due = s.next_ms
        missed = due + s.every_ms <= self.clock or self.clock - due > MISSED_AFTER_MS
        if not missed or s.missed == "run_once":
            s.runs.add(due)
        if missed:
            s.next_ms = due + ((self.clock - due) // s.every_ms + 1) * s.every_ms
        else:
            s.next_ms = due + s.every_ms

    @rule(
        schedule_id=st.sampled_from(IDS),
        every_s=st.integers(1, 3),
        missed=st.sampled_from(["run_once", "skip"]),
        paused=st.booleans(),
    )
    def put(self, schedule_id: str, every_s: int, missed: str, paused: bool) -> None:
        body = {"every": f"{every_s}s", "job": {"type": "echo"}, "missed": missed}
        old = self.model.get(schedule_id)
        if old is None and len(self.model) == 2:
            with pytest.raises(Exception, match="MAX_SCHEDULES"):
                self.store.put(schedule_id, {**body, "paused": paused}, now_ms=self.clock)
            return
        self.store.put(schedule_id, {**body, "paused": paused}, now_ms=self.clock)
        every_ms = every_s * SECOND
        keep = (
            old is not None
            and not old.paused
            and old.every_ms == every_ms
            and old.next_ms is not None
            and old.next_ms >= self.clock
        )
        if paused:
            next_ms = None
        elif keep:
            assert old is not None
            next_ms = old.next_ms
        else:
            next_ms = self.clock + every_ms
        if old is None:
            self.incarnation[schedule_id] += 1
            self.model[schedule_id] = Model(every_ms, missed, paused, next_ms)
        else:
            old.every_ms, old.missed, old.paused, old.next_ms = every_ms, missed, paused, next_ms
            old.revision += 1

    @rule(schedule_id=st.sampled_from(IDS), pause=st.booleans())
    def pause_or_resume(self, schedule_id: str, pause: bool) -> None:
        s = self.model.get(schedule_id)
        if s is None:
            with pytest.raises(Exception, match="not found"):
                self.store.pause(schedule_id)
            return
        if pause:
            self.store.pause(schedule_id)
            s.paused, s.next_ms = True, None
        else:
            self.store.resume(schedule_id, now_ms=self.clock)
            keep = not s.paused and s.next_ms is not None and s.next_ms >= self.clock
            s.paused, s.next_ms = False, s.next_ms if keep else self.clock + s.every_ms
        s.revision += 1

    @rule(schedule_id=st.sampled_from(IDS))
    def delete(self, schedule_id: str) -> None:
        s = self.model.pop(schedule_id, None)
        if s is None:
            with pytest.raises(Exception, match="not found"):
                self.store.delete(schedule_id)
            return
        self.store.delete(schedule_id)
        self.gone_runs[schedule_id] |= s.runs

    # Whole and part intervals, and downtime past MISSED_AFTER_MS.
    @rule(ms=st.sampled_from([0, 400, SECOND, 1700, 2 * SECOND, 4500, 90 * SECOND]))
    def tick(self, ms: int) -> None:
        self.clock += ms

    @rule()
    def fire(self) -> None:
        self.store.fire_due(now_ms=self.clock)
        for s in self.model.values():
            if not s.paused and s.next_ms is not None and s.next_ms <= self.clock:
                self._fire_model(s)

    def _due(self) -> list[str]:
        return [
            i for i, s in self.model.items() if s.next_ms is not None and s.next_ms <= self.clock
        ]

    @precondition(lambda self: self._due())
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """A firer reads a due schedule and is then held up (a GC pause, a slow network)."""
        schedule_id = data.draw(st.sampled_from(sorted(self._due())))
        s = self.model[schedule_id]
        stored = cast(dict[str, str], self.client.hgetall(self.store.keys.schedule(schedule_id)))
        self.reads.append(Read(schedule_id, stored, s.revision, self.incarnation[schedule_id]))

    @precondition(lambda self: self.reads)
    @rule(index=st.integers(0, 5))
    def fire_what_was_read(self, index: int) -> None:
        r = self.reads.pop(index % len(self.reads))
        self.store._fire(r.schedule_id, r.data, self.clock)
        s = self.model.get(r.schedule_id)
        unchanged = (
            s is not None
            and r.incarnation == self.incarnation[r.schedule_id]
            and r.revision == s.revision
            and s.next_ms == int(r.data["next_run_at"])
        )
        if unchanged:
            assert s is not None
            self._fire_model(s)

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        keys = self.store.keys
        scores = self.client.zrange(keys.schedules_due, 0, -1, withscores=True)
        due = dict(cast(list[tuple[str, float]], scores))
        assert due == {i: s.next_ms for i, s in self.model.items() if not s.paused}
        assert cast(list[str], self.client.zrange(keys.schedules, 0, -1)) == sorted(self.model)
        pipe = self.client.pipeline(transaction=False)
        job_ids = cast(list[str], self.client.zrange(keys.jobs, 0, -1))
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), ["schedule_id", "scheduled_for", "status"])
        runs: dict[str, list[int]] = {id_: [] for id_ in IDS}
        for owner, scheduled_for, status in pipe.execute():
            assert status == JobStatus.PENDING.value
            runs[owner].append(int(scheduled_for))
        for id_ in IDS:
            expected = self.gone_runs[id_] | (self.model[id_].runs if id_ in self.model else set())
            assert sorted(runs[id_]) == sorted(expected), id_
        count = len(job_ids)
        assert self.client.llen(keys.queue("default")) == count
        assert self.client.zcard(keys.status(JobStatus.PENDING)) == count
        assert int(self.client.hget(keys.stats, "created|default|echo") or 0) == count
        for id_, s in self.model.items():
            stored = cast(dict[str, Any], self.client.hgetall(keys.schedule(id_)))
            assert int(stored.get("runs", 0)) == len(s.runs)


def test_schedule_scripts_match_the_model(redis_server: RedisServer) -> None:
    ScheduleMachine.server = redis_server
    run_state_machine_as_test(
        ScheduleMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
