"""LeaseWaiter: the long-poll of POST /leases is bounded and ends at shutdown."""

from __future__ import annotations

import threading
import time

from workstream.api.resources.leases import LeaseWaiter
from workstream.common.leases import Lease


def test_a_call_that_finds_jobs_answers_at_once_without_a_waiting_slot() -> None:
    waiter = LeaseWaiter(0)
    found: list[Lease] = [object()]  # type: ignore[list-item]
    assert waiter.poll(lambda: found, 30) is found


def test_it_polls_until_something_comes_then_answers() -> None:
    waiter = LeaseWaiter(1)
    calls: list[int] = []

    def take() -> list[Lease]:
        calls.append(1)
        return [object()] if len(calls) == 3 else []  # type: ignore[list-item]

    assert len(waiter.poll(take, 5)) == 1 and len(calls) == 3


def test_it_ends_empty_after_the_given_seconds() -> None:
    waiter = LeaseWaiter(1)
    started = time.monotonic()
    assert waiter.poll(list, 0.3) == []
    assert 0.28 <= time.monotonic() - started < 1.0


def test_past_its_capacity_a_call_answers_at_once_instead_of_holding_a_thread() -> None:
    waiter = LeaseWaiter(1)
    holding = threading.Thread(target=waiter.poll, args=(list, 1.0))
    holding.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert waiter.poll(list, 10) == []
    assert time.monotonic() - started < 0.1
    holding.join(5)


def test_shutdown_ends_every_wait_at_once() -> None:
    stopping = threading.Event()
    waiter = LeaseWaiter(4, stopping=stopping)
    threading.Timer(0.2, stopping.set).start()
    started = time.monotonic()
    assert waiter.poll(list, 30) == []
    assert time.monotonic() - started < 1.0
