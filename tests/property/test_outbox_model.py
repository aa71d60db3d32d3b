"""Hand-offs between shards (common/outbox.py) under any interleaving, on a real redis-server
with QUEUE_SHARDS: a schedule for a queue of shard a fires from the default shard, movers run,
die between the target's write and the entry's removal, or die before the target's write, the
target refuses (a key of the wrong type), created jobs' records expire. After every step:
every run the schedule fired is created in shard a or still owed, none created twice."""

from __future__ import annotations

from typing import Any, cast

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.common.keys import Keys
from workstream.common.outbox import Entry, Outbox
from workstream.common.schedules import ScheduleStore

HOME, A = Keys("default"), Keys("default", "a")
FAR_MS = 10**7  # a mover's clock this far ahead: deferred entries are due again


class Died(Exception):
    pass


class OutboxMachine(RuleBasedStateMachine):
    server: RedisServer

    def __init__(self) -> None:
        super().__init__()
        self.client: redis.Redis = self.server.client()
        self.client.flushall()
        self.settings = make_settings(self.server.url, QUEUE_SHARDS="emails:a")
        self.schedules = ScheduleStore(self.client, self.settings)
        self.fired: set[str] = set()  # run job ids the schedule reported fired
        self.expired: set[str] = set()  # created, then their record removed
        self.broken = False

    @initialize()
    def define(self) -> None:
        self.schedules.put(
            "tick", {"every": "1s", "job": {"type": "t", "queue": "emails"}}, now_ms=1_000_000
        )
        self.now = int(cast(str, self.client.hget(HOME.schedule("tick"), "next_run_at")))

    @rule(seconds=st.integers(0, 3))
    def fire(self, seconds: int) -> None:
        self.now += seconds * 1000
        runs = int(cast(str, self.client.hget(HOME.schedule("tick"), "runs") or 0))
        self.schedules.fire_due(now_ms=self.now)
        data = cast(dict[str, str], self.client.hgetall(HOME.schedule("tick")))
        if int(data.get("runs", 0)) > runs:
            self.fired.add(data["last_job_id"])

    def _mover(self) -> Outbox:
        return Outbox(self.client, self.settings)

    def _far(self) -> int:
        seconds, _ = self.client.time()
        return int(seconds) * 1000 + FAR_MS

    @rule()
    def move(self) -> None:
        self._mover().move(now_ms=self._far())

    @rule()
    def move_dying_after_the_target(self) -> None:
        mover = self._mover()
        done = mover._done

        def die(source: str, raw: str, due_again_ms: int) -> None:
            if due_again_ms == 0:
                raise Died(raw)
            done(source, raw, due_again_ms)

        mover._done = die  # type: ignore[method-assign]
        try:
            mover.move(now_ms=self._far())
        except Died:
            pass

    @rule()
    def move_dying_before_the_target(self) -> None:
        mover = self._mover()

        def die(entry: Entry, body: str) -> Any:
            raise Died(entry.raw)

        mover._target_call = die  # type: ignore[method-assign]
        try:
            mover.move(now_ms=self._far())
        except Died:
            pass

    @rule()
    def break_or_mend_the_target(self) -> None:
        """The target's types set holds a string (a hand edit): handoff_create refuses."""
        if self.broken:
            self.client.delete(A.types("emails"))
            if self.client.exists("backup"):
                self.client.rename("backup", A.types("emails"))
        else:
            if self.client.exists(A.types("emails")):
                self.client.rename(A.types("emails"), "backup")
            self.client.set(A.types("emails"), "hand-edited")
        self.broken = not self.broken

    @rule(index=st.integers(0, 5))
    def expire_a_created_job(self, index: int) -> None:
        created = sorted(self._queued())
        if created:
            job_id = created[index % len(created)]
            self.client.lrem(A.queue("emails"), 0, job_id)
            self.client.delete(A.job(job_id))
            self.expired.add(job_id)

    def _queued(self) -> list[str]:
        return [str(i) for i in self.client.lrange(A.queue("emails"), 0, -1)]

    def _owed(self) -> set[str]:
        entries = cast(list[str], self.client.zrange(HOME.outbox, 0, -1))
        return {entry.rsplit("|", 1)[1] for entry in entries}

    @invariant()
    def every_fired_run_is_created_once_or_still_owed(self) -> None:
        queued = self._queued()
        assert len(queued) == len(set(queued)), "a run created twice"
        created = set(queued) | self.expired
        created_count = int(cast(str, self.client.hget(A.stats, "created|emails|t") or 0))
        assert created_count == len(created), "a run created twice"
        assert created <= self.fired
        assert self.fired <= created | self._owed(), "a fired run lost"
        assert all(job_id.startswith("a:") for job_id in created)

    def teardown(self) -> None:
        if self.broken:
            self.break_or_mend_the_target()
        self.move()
        assert not self._owed()
        assert set(self._queued()) | self.expired == self.fired
        self.client.close()


def test_hand_offs_are_created_once_and_never_lost_in_any_interleaving(
    redis_server: RedisServer,
) -> None:
    OutboxMachine.server = redis_server
    run_state_machine_as_test(
        OutboxMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
