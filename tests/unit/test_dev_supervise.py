"""`workstream dev` keeps its stack up: a dead worker or API is started again after a backoff
that doubles while it keeps dying young (0.5 s, 1 s, 2 s, ... up to 10 s) and starts over once
one lived STEADY_S; a dead Redis is handed back to stop the stack."""

from __future__ import annotations

import io
import subprocess
from typing import Any, cast

import pytest

from workstream.cli import dev
from workstream.cli.dev import Child, DevStack


class FakePopen:
    _next_pid = 1000

    def __init__(self) -> None:
        FakePopen._next_pid += 1
        self.pid = FakePopen._next_pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> DevStack:
    made = DevStack(workers=1, port=None, environ={}, out=io.StringIO())
    made.clock = clock
    monkeypatch.setattr(made, "warn", lambda line: None)

    def spawn(role: str) -> Child:
        child = Child(role, cast("subprocess.Popen[bytes]", FakePopen()), started=clock.now)
        made.children.append(child)
        return child

    monkeypatch.setattr(made, "start_worker", lambda: spawn("worker"))
    monkeypatch.setattr(made, "start_api", lambda: spawn("api"))
    spawn("redis")
    spawn("api")
    spawn("worker")
    return made


def _child(stack: DevStack, role: str) -> Any:
    return next(c for c in stack.children if c.role == role)


def _kill(stack: DevStack, role: str) -> FakePopen:
    popen = cast(FakePopen, _child(stack, role).popen)
    popen.code = -9
    return popen


def _restart_delay(stack: DevStack, clock: Clock, role: str = "worker") -> float:
    """Kills the role's process and returns how long the stack waited to replace it."""
    killed = _kill(stack, role)
    assert stack.supervise() is None
    started = clock.now
    while cast(FakePopen, _child(stack, role).popen) is killed:
        clock.now += 0.25
        stack.supervise()
        assert clock.now - started < 60, "never restarted"
    return clock.now - started


def test_a_dead_worker_is_replaced_after_half_a_second(stack: DevStack, clock: Clock) -> None:
    assert _restart_delay(stack, clock) == 0.5
    assert [c.role for c in stack.children].count("worker") == 1


def test_a_dead_api_is_replaced_too(stack: DevStack, clock: Clock) -> None:
    assert _restart_delay(stack, clock, "api") == 0.5


def test_a_worker_dying_young_again_and_again_waits_longer_each_time(
    stack: DevStack, clock: Clock
) -> None:
    delays = [_restart_delay(stack, clock) for _ in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_worker_that_lived_a_while_is_replaced_quickly_again(
    stack: DevStack, clock: Clock
) -> None:
    for _ in range(4):
        _restart_delay(stack, clock)
    clock.now += dev.STEADY_S
    assert _restart_delay(stack, clock) == 0.5


def test_a_dead_redis_is_returned_so_the_stack_stops(stack: DevStack) -> None:
    _kill(stack, "redis")
    dead = stack.supervise()
    assert dead is not None and dead.role == "redis"
