"""Pool.take_back: the jobs no slot has taken leave the hand-off, each job is either run by one
slot or taken back, never both, and the stop signal of close() is left for the slots."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.unit.test_pool import WAIT_S, NoRedisStore, _wait_for_handler, gates, job
from workstream.worker.pool import Pool, Slot


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    monkeypatch.setattr(Slot, "_client", lambda self: None)
    gates.clear()
    gates.update(open=threading.Event(), returning=threading.Event())
    pool = Pool(NoRedisStore(), "w-test", 1)  # type: ignore[arg-type]
    pool.start()
    yield pool
    gates["open"].set()
    pool.close()


def test_jobs_waiting_behind_a_busy_slot_are_taken_back_and_never_run(one_slot: Pool) -> None:
    one_slot.submit([job("busy", "pool_gated")])
    _wait_for_handler(one_slot.slots[0])
    one_slot.submit([job("a", "pool_echo"), job("b", "pool_echo")])
    taken = one_slot.take_back()
    assert [j.id for j in taken] == ["a", "b"]
    gates["open"].set()
    finished, outcome = one_slot.done.get(timeout=WAIT_S)
    assert finished.id == "busy" and outcome.ok
    one_slot.submit([job("c", "pool_echo")])
    assert one_slot.done.get(timeout=WAIT_S)[0].id == "c"  # the slot still serves
    assert one_slot.done.empty()  # a and b never ran


def test_take_back_leaves_the_stop_signal_for_the_slots() -> None:
    pool = Pool(NoRedisStore(), "w-test", 2)  # type: ignore[arg-type]
    pool.submit([job("a", "pool_echo")])
    pool.close()
    assert [j.id for j in pool.take_back()] == ["a"]
    assert pool.jobs.qsize() == 2  # one stop signal per slot is still there
