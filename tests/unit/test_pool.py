"""The slot pool without Redis: hand-offs, the timeout raised under the slot's lock, each outcome
reported once, and handlers that leave through anything at all. The watchdog is driven by hand
(pool.enforce) where the order of events matters, so these tests never depend on timing luck."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.faults import nested
from workstream.common.jobs import ClaimedJob
from workstream.worker import pool as pool_module
from workstream.worker.pool import ABANDON_AFTER_S, WATCHDOG_TICK_S, Finished, Pool, Slot
from workstream.worker.registry import JobContext, JobTimeoutError, handler

WAIT_S = 5.0

# Gates the handlers below wait on; each test sets up its own.
gates: dict[str, threading.Event] = {}


@handler("pool_echo")
def pool_echo(payload: Any, ctx: JobContext) -> Any:
    return payload


@handler("pool_gated")
def pool_gated(payload: Any, ctx: JobContext) -> str:
    """Blocks in C (Event.wait) until its gate opens: a timeout cannot reach it meanwhile."""
    gates["open"].wait()
    gates["returning"].set()
    return "returned"


@handler("pool_leave")
def pool_leave(payload: Any, ctx: JobContext) -> Any:
    how = payload["how"]
    if how == "system_exit":
        raise SystemExit(3)
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt
    if how == "lone_surrogate":
        raise RuntimeError("bad \udcff")
    if how == "deep_result":
        return nested(100_000)
    raise AssertionError(how)


@handler("pool_sleep")
def pool_sleep(payload: Any, ctx: JobContext) -> None:
    """Sleeps in short steps, so a timeout (delivered between bytecodes) lands promptly."""
    deadline = time.monotonic() + float(payload["seconds"])
    while time.monotonic() < deadline:
        time.sleep(0.005)


def job(job_id: str, job_type: str, payload: str = "null", timeout_ms: int = 60_000) -> ClaimedJob:
    return ClaimedJob(
        id=job_id, type=job_type, queue="default", payload_json=payload, attempt=1,
        max_attempts=1, timeout_ms=timeout_ms, lease="1", created_at=0, alone=False,
    )  # fmt: skip


class NoRedisStore:
    settings = None


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Handlers here use no Redis: ctx.redis is None."""
    monkeypatch.setattr(Slot, "_client", lambda self: None)


@pytest.fixture
def slots_only(no_redis: None) -> Iterator[Pool]:
    """A one-slot pool whose watchdog does not run: the test calls pool.enforce itself."""
    gates.clear()
    gates.update(open=threading.Event(), returning=threading.Event())
    pool = Pool(NoRedisStore(), "w-test", 1)  # type: ignore[arg-type]
    for slot in pool.slots:
        slot.thread.start()
    yield pool
    gates["open"].set()
    pool.close()


@pytest.fixture
def running_pool(no_redis: None) -> Iterator[Pool]:
    pool = Pool(NoRedisStore(), "w-test", 2)  # type: ignore[arg-type]
    pool.start()
    yield pool
    pool.close()


def _wait_for_handler(slot: Slot) -> None:
    deadline = time.monotonic() + WAIT_S
    while not (slot.in_handler and slot.job is not None):
        assert time.monotonic() < deadline, "the slot never entered the handler"
        time.sleep(0.001)


def _next(pool: Pool) -> Finished:
    return pool.done.get(timeout=WAIT_S)


def test_a_timeout_raised_as_the_handler_returns_is_caught_before_the_hand_off(
    slots_only: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = slots_only
    slot = pool.slots[0]
    real_raise = pool_module._raise_in_thread
    handed_over_first: list[bool] = []

    def raise_as_it_returns(thread_id: int, exc: type[BaseException] | None) -> None:
        # The watchdog decided to raise; let the handler return first, then raise, as the
        # scheduler could. The slot may not hand anything over while the watchdog holds the lock.
        if exc is JobTimeoutError:
            gates["open"].set()
            assert gates["returning"].wait(WAIT_S)
            handed_over_first.append(not pool.done.empty())
        real_raise(thread_id, exc)

    monkeypatch.setattr(pool_module, "_raise_in_thread", raise_as_it_returns)
    pool.submit([job("racing", "pool_gated", timeout_ms=1)])
    _wait_for_handler(slot)
    assert pool.enforce(slot, time.monotonic() + 1)
    finished, outcome = _next(pool)
    assert finished.id == "racing" and handed_over_first == [False]
    assert outcome.timed_out or outcome.ok  # one verdict, whichever the lock gave
    pool.submit([job("after", "pool_echo", payload="7")])
    finished, outcome = _next(pool)  # the same thread: the exception never escaped it
    assert (finished.id, outcome.result_json) == ("after", "7")
    assert pool.done.empty() and slot.thread.is_alive()


def test_an_abandoned_handler_that_returns_later_is_reported_once(slots_only: Pool) -> None:
    pool = slots_only
    slot = pool.slots[0]
    pool.submit([job("stuck", "pool_gated", timeout_ms=1)])
    _wait_for_handler(slot)
    now = time.monotonic() + 1
    assert pool.enforce(slot, now)  # the timeout is raised; blocked in C, it cannot land
    assert not pool.enforce(slot, now + ABANDON_AFTER_S + 1)  # abandoned and reported
    finished, outcome = _next(pool)
    assert finished.id == "stuck" and outcome.timed_out
    gates["open"].set()  # the handler returns after all
    slot.thread.join(WAIT_S)
    assert not slot.thread.is_alive()  # it retired without reporting a second time
    assert pool.done.empty() and pool.abandoned_threads == 1
    assert pool.slots[0] is not slot
    pool.submit([job("next", "pool_echo", payload='"x"')])
    finished, outcome = _next(pool)  # the fresh thread serves the slot
    assert (finished.id, outcome.ok) == ("next", True)
    assert pool.done.empty()


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("system_exit", "SystemExit: 3"),
        ("keyboard_interrupt", "KeyboardInterrupt: "),
        ("lone_surrogate", "RuntimeError: bad \\udcff"),
        ("deep_result", "result is not JSON-serialisable: "),
    ],
)
def test_a_handler_leaving_through_anything_fails_its_job_and_keeps_its_slot(
    running_pool: Pool, how: str, error: str
) -> None:
    pool = running_pool
    count = pool.size * 2 + 1  # more than there are slots: a leak would stall the rest
    pool.submit(
        [job(f"{how}-{n}", "pool_leave", payload=f'{{"how": "{how}"}}') for n in range(count)]
    )
    outcomes = [_next(pool)[1] for _ in range(count)]
    for outcome in outcomes:
        assert not outcome.ok and outcome.error.startswith(error)
        outcome.error.encode()  # storable as it is
    pool.submit([job("after", "pool_echo", payload="1")])
    assert _next(pool)[0].id == "after"
    assert pool.broken() is None and all(slot.thread.is_alive() for slot in pool.slots)


def test_a_job_past_its_deadline_is_timed_out_by_the_running_watchdog(running_pool: Pool) -> None:
    pool = running_pool
    pool.submit([job("slow", "pool_sleep", payload='{"seconds": 30}', timeout_ms=50)])
    finished, outcome = _next(pool)
    assert finished.id == "slow" and outcome.timed_out
    assert outcome.error == "timed out after 0.05s"


def test_a_slot_thread_that_dies_of_a_bug_marks_the_pool_broken(
    running_pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = running_pool

    def broken_prepare(*args: object) -> None:
        raise RuntimeError("bug in the pool")

    monkeypatch.setattr(pool_module, "prepare", broken_prepare)
    pool.submit([job("any", "pool_echo")])
    assert pool.crashed.wait(WAIT_S)
    assert pool.broken() == "slot thread crashed"


@pytest.fixture
def quick_to_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "WATCHDOG_IDLE_AFTER_S", WATCHDOG_TICK_S * 3)


def test_an_idle_pools_watchdog_sleeps_instead_of_ticking(
    quick_to_idle: None, running_pool: Pool
) -> None:
    pool = running_pool
    time.sleep(WATCHDOG_TICK_S * 5)  # past WATCHDOG_IDLE_AFTER_S
    ticks = pool.watchdog_ticks
    time.sleep(WATCHDOG_TICK_S * 15)
    assert pool.watchdog_ticks - ticks <= 1  # ticking, it would have woken ~15 times


def test_a_job_started_after_an_idle_spell_still_has_its_timeout_enforced(
    quick_to_idle: None, running_pool: Pool
) -> None:
    pool = running_pool
    time.sleep(WATCHDOG_TICK_S * 10)  # the watchdog goes to sleep
    pool.submit([job("stuck", "pool_sleep", payload='{"seconds": 3}', timeout_ms=100)])
    finished, outcome = _next(pool)
    assert finished.id == "stuck" and outcome.timed_out
