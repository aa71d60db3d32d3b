"""What every model-based test shares: fakeredis behind RedisServer's shape, and one runner that
picks the backend and size, runs the state machine and records its figures in the results
table (tests/faults/results.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from tests.faults.results import record
from tests.support.redis_server import RedisServer

BACKENDS = ("fakeredis", "redis-server")


class FakeRedisServer:
    """fakeredis (with its Lua support, lupa) behind RedisServer's two members the model uses:
    one in-process server per run, every client a connection to it."""

    url = "redis://fakeredis.invalid/0"  # Settings wants a URL; the store gets clients directly

    def __init__(self) -> None:
        self._server = fakeredis.FakeServer()

    def client(self, **kwargs: object) -> redis.Redis:
        kwargs.pop("single_connection_client", None)  # one in-process server: no sockets
        return fakeredis.FakeRedis(server=self._server, decode_responses=True, **kwargs)  # type: ignore[arg-type]


class ModelMachine(RuleBasedStateMachine):
    """A machine run_model can drive: it reads its server from the class and adds up what it
    saw in `totals` over every example."""

    server: ClassVar[RedisServer | FakeRedisServer]
    totals: ClassVar[Counter[str]] = Counter()


def run_model(
    machine: type[ModelMachine],
    *,
    backend: str,
    scenario: str,
    fast: tuple[int, int],
    full: tuple[int, int],
    faults: Callable[[Counter[str]], str],
    pytestconfig: pytest.Config,
    request: pytest.FixtureRequest,
    **extra: Any,
) -> None:
    """Runs `machine` on `backend`: on fakeredis in every run at the `fast` (examples, steps),
    derandomized; with --run-chaos at `full`, random, on fakeredis and on a real redis-server
    (skipped otherwise). `scenario` names the results row (`{backend}` in it is filled in);
    `faults` words its totals; `extra`
    goes to Hypothesis's settings."""
    chaos = bool(pytestconfig.getoption("--run-chaos"))
    if backend == "redis-server" and not chaos:
        pytest.skip("the real-server run is part of make chaos (--run-chaos)")
    examples, steps = full if chaos else fast
    machine.server = (
        FakeRedisServer() if backend == "fakeredis" else request.getfixturevalue("redis_server")
    )
    machine.totals = Counter()
    clock = time.monotonic()
    passed = False
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                derandomize=not chaos,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                database=None,
                **extra,
            ),
        )
        passed = True
    finally:
        record(
            scenario.format(backend=backend),
            "full" if chaos else "fast",
            jobs=machine.totals["created"],
            faults=faults(machine.totals),
            lost=0 if passed else 1,
            duplicates=None,
            wall_s=time.monotonic() - clock,
            passed=passed,
            notes=f"{examples} examples x up to {steps} steps, invariants checked after each",
        )
