"""The fetcher role in the slot pool: lent to the job an idle fetcher took, passed on when that
job runs long (leader/follower)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from workstream.common.jobs import ClaimedJob
from workstream.worker import pool as pool_module
from workstream.worker.pool import ROLE_LEND_S, WATCHDOG_TICK_S, Pool
from workstream.worker.registry import handler

HOLD_TIMEOUT_S = 5.0


@handler("pool_role_sleep")
def pool_role_sleep(payload: Any, ctx: Any) -> None:
    time.sleep(float(payload["seconds"]))


def job(job_id: str, seconds: float) -> ClaimedJob:
    return ClaimedJob(
        id=job_id, type="pool_role_sleep", queue="default",
        payload_json=f'{{"seconds": {seconds}}}', attempt=1, max_attempts=1, timeout_ms=60_000,
        lease="1", created_at=0, alone=False,
    )  # fmt: skip


class ScriptedFetcher:
    """Hands out one job per hold() call from a script, lending the role as the real fetcher
    does, then blocks until closed; records which thread each hold() ran in."""

    def __init__(self, jobs: list[ClaimedJob]) -> None:
        self.pool: Pool | None = None
        self.jobs = jobs
        self.holders: list[int] = []
        self.closed = threading.Event()
        self.changed = threading.Condition()

    def hold(self) -> ClaimedJob | None:
        with self.changed:
            self.holders.append(threading.get_ident())
            self.changed.notify_all()
        if self.jobs:
            assert self.pool is not None
            self.pool.lend()
            return self.jobs.pop(0)
        self.closed.wait(HOLD_TIMEOUT_S)
        return None

    def wait_holders(self, count: int) -> list[int]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.holders) >= count, HOLD_TIMEOUT_S)
            return list(self.holders)


class NoRedisStore:
    settings = None


@pytest.fixture
def pool_and_fetcher(request: pytest.FixtureRequest) -> Iterator[tuple[Pool, ScriptedFetcher]]:
    fetcher = ScriptedFetcher(request.param)
    pool = Pool(NoRedisStore(), "w-test", 2)  # type: ignore[arg-type]
    fetcher.pool = pool
    for slot in pool.slots:  # handlers here use no Redis
        slot._client = lambda: None  # type: ignore[method-assign, assignment, return-value]
    pool.start(fetcher)
    yield pool, fetcher
    fetcher.closed.set()
    pool.close()


@pytest.mark.parametrize("pool_and_fetcher", [[job("quick", 0)]], indirect=True)
def test_a_quick_job_is_run_by_the_fetchers_thread_which_then_fetches_again(
    pool_and_fetcher: tuple[Pool, ScriptedFetcher],
) -> None:
    pool, fetcher = pool_and_fetcher
    first, second = fetcher.wait_holders(2)
    assert first == second  # no hand-off to another thread
    finished, outcome = pool.done.get(timeout=HOLD_TIMEOUT_S)
    assert finished.id == "quick" and outcome.ok


@pytest.mark.parametrize("pool_and_fetcher", [[job("slow", ROLE_LEND_S * 25)]], indirect=True)
def test_a_slow_job_has_the_fetcher_role_passed_to_another_thread_meanwhile(
    pool_and_fetcher: tuple[Pool, ScriptedFetcher],
) -> None:
    pool, fetcher = pool_and_fetcher
    started = time.monotonic()
    first, second = fetcher.wait_holders(2)
    assert second != first  # another slot fetches while the slow job runs
    assert time.monotonic() - started < ROLE_LEND_S * 25  # before the slow job ended
    finished, outcome = pool.done.get(timeout=HOLD_TIMEOUT_S)
    assert finished.id == "slow" and outcome.ok


@pytest.fixture
def quick_to_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "WATCHDOG_IDLE_AFTER_S", WATCHDOG_TICK_S * 3)


@pytest.mark.parametrize("pool_and_fetcher", [[]], indirect=True)
def test_an_idle_pools_watchdog_sleeps_instead_of_ticking(
    quick_to_idle: None, pool_and_fetcher: tuple[Pool, ScriptedFetcher]
) -> None:
    pool, fetcher = pool_and_fetcher
    fetcher.wait_holders(1)  # the fetcher waits for work; nothing runs, nothing is lent
    time.sleep(WATCHDOG_TICK_S * 5)  # past WATCHDOG_IDLE_AFTER_S
    ticks = pool.watchdog_ticks
    time.sleep(WATCHDOG_TICK_S * 15)
    assert pool.watchdog_ticks - ticks <= 1  # ticking, it would have woken ~15 times


class IdleThenJobFetcher(ScriptedFetcher):
    """Waits idle for a while (the watchdog goes to sleep), then hands out its one job."""

    def hold(self) -> ClaimedJob | None:
        if self.jobs:
            time.sleep(WATCHDOG_TICK_S * 10)
        return super().hold()


def test_a_job_started_after_an_idle_spell_still_has_its_timeout_enforced(
    quick_to_idle: None,
) -> None:
    stuck = ClaimedJob(
        id="stuck", type="pool_role_sleep", queue="default", payload_json='{"seconds": 3}',
        attempt=1, max_attempts=1, timeout_ms=100, lease="1", created_at=0, alone=False,
    )  # fmt: skip
    fetcher = IdleThenJobFetcher([stuck])
    pool = Pool(NoRedisStore(), "w-test", 2)  # type: ignore[arg-type]
    fetcher.pool = pool
    for slot in pool.slots:
        slot._client = lambda: None  # type: ignore[method-assign, assignment, return-value]
    pool.start(fetcher)
    try:
        finished, outcome = pool.done.get(timeout=HOLD_TIMEOUT_S)
    finally:
        fetcher.closed.set()
        pool.close()
    assert finished.id == "stuck" and outcome.timed_out
