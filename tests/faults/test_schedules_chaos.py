"""Schedules under process faults, full size (make chaos): three workers and two APIs over 20 s
of 1 s and 2 s schedules with a worker SIGKILLed, every due run enqueued exactly once; and the
missed-run policies after every firer stopped and one came back."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from tests.e2e.test_schedules_processes import ENV, KEYS, put, run_span, runs
from tests.faults.conftest import RedisFactory, StackFactory
from tests.support.stack import wait_until

pytestmark = pytest.mark.chaos


def test_each_due_run_is_enqueued_once_over_20_s_with_a_worker_killed(
    make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    run_span(make_stack(server.url), server.client(), span_s=20)


def test_after_every_firer_stopped_run_once_enqueues_one_run_and_skip_none(
    make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client: redis.Redis = server.client()
    stack = make_stack(server.url)
    api = stack.start_api(ENV)
    worker = stack.start_worker(ENV)
    put(api, "once", {"every": "1s", "job": {"type": "echo"}})
    put(api, "skip", {"every": "1s", "job": {"type": "echo"}, "missed": "skip"})
    assert wait_until(lambda: len(runs(client, "once")) >= 2 and len(runs(client, "skip")) >= 2, 15)

    worker.signal(signal.SIGTERM)
    assert worker.wait(30) is not None
    before = {name: runs(client, name) for name in ("once", "skip")}
    time.sleep(3.5)  # at least three runs of each fall due with nobody firing
    restarted_ms = int(client.time()[0]) * 1000
    stack.start_worker(ENV)
    assert wait_until(lambda: len(runs(client, "skip")) >= len(before["skip"]) + 2, 15)
    for name in ("once", "skip"):
        assert api.request("POST", f"/schedules/{name}/pause")[0] == 200

    once, skip = runs(client, "once"), runs(client, "skip")
    # run_once: the run due when the firers stopped is enqueued once for the whole window,
    # then the schedule keeps its beat from after the restart.
    missed_run = before["once"][-1] + 1000
    assert once[: len(before["once"]) + 1] == [*before["once"], missed_run]
    after = once[len(before["once"]) + 1 :]
    assert after and after[0] > restarted_ms - 1000 and after[0] - missed_run > 1000
    assert after == list(range(after[0], after[-1] + 1, 1000))
    # skip: nothing for the window; the beat resumes after the restart.
    assert skip[: len(before["skip"])] == before["skip"]
    resumed = skip[len(before["skip"]) :]
    assert resumed[0] > restarted_ms - 1000 and resumed[0] - before["skip"][-1] > 2000
    assert resumed == list(range(resumed[0], resumed[-1] + 1, 1000))
    assert int(client.hget(KEYS.schedule("skip"), "skipped") or 0) == 1
