"""The fetcher role in the slot pool: lent to the job an idle fetcher took, passed on when that
job runs long (leader/follower)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from common.jobs import ClaimedJob
from worker.pool import ROLE_LEND_S, Pool
from worker.registry import handler

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
