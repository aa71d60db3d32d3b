"""Which requests waitress's loop thread serves itself (api.dispatch), with fake channels."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from workstream.api.dispatch import (
    COOL_DOWN_S,
    INLINE_MAX_BACKLOG_BYTES,
    INLINE_MAX_BODY_BYTES,
    MAX_COOL_DOWN_S,
    SLOW_INLINE_S,
    InlineDispatcher,
    InlineServer,
    Task,
)


@dataclass
class FakeRequest:
    command: str = "POST"
    path: str = "/jobs"
    content_length: int = 40


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeChannel:
    request: FakeRequest = field(default_factory=FakeRequest)
    total_outbufs_len: int = 0
    served_for: float = 0.0  # seconds a service() takes on the fake clock
    clock: FakeClock | None = None
    served: int = 0
    connected: bool = True
    adj: Any = None
    adj_while_served: Any = None
    flushes: int = 0

    @property
    def requests(self) -> list[FakeRequest]:
        return [self.request]

    def service(self) -> None:
        self.served += 1
        self.adj_while_served = self.adj
        if self.clock is not None:
            self.clock.now += self.served_for

    def handle_write(self) -> None:
        self.flushes += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dispatcher(clock: FakeClock) -> InlineDispatcher:
    # No pool threads are started: a task handed to the pool stays in `queue` for inspection.
    made = InlineDispatcher(clock=clock)
    made.loop_thread = threading.get_ident()
    return made


def test_a_small_submission_read_by_the_loop_is_served_by_the_loop(
    dispatcher: InlineDispatcher,
) -> None:
    channel = FakeChannel()
    dispatcher.add_task(channel)
    assert list(dispatcher.ready) == [channel] and not dispatcher.queue
    dispatcher.run_ready()
    assert channel.served == 1 and not dispatcher.ready


def test_the_submissions_one_poll_made_ready_are_served_as_one_pass(clock: FakeClock) -> None:
    passes: list[int] = []

    def serve_together(tasks: Sequence[Task]) -> None:
        passes.append(len(tasks))
        for task in tasks:
            task()

    dispatcher = InlineDispatcher(clock=clock, serve_together=serve_together)
    dispatcher.loop_thread = threading.get_ident()
    channels = [FakeChannel() for _ in range(3)]
    for channel in channels:
        dispatcher.add_task(channel)
    dispatcher.run_ready()
    assert passes == [3] and [channel.served for channel in channels] == [1, 1, 1]


def test_an_inline_reply_is_held_while_served_and_flushed_once_after(
    dispatcher: InlineDispatcher,
) -> None:
    served_adj, holding_adj = SimpleNamespace(send_bytes=1), SimpleNamespace(send_bytes=1 << 62)
    dispatcher.holding_adj = holding_adj
    channel = FakeChannel(adj=served_adj)
    dispatcher.add_task(channel)
    dispatcher.run_ready()
    assert channel.adj_while_served is holding_adj and channel.adj is served_adj
    assert channel.flushes == 1


def test_no_flush_is_tried_for_a_client_gone_while_served(dispatcher: InlineDispatcher) -> None:
    channel = FakeChannel(connected=False)
    dispatcher.add_task(channel)
    dispatcher.run_ready()
    assert channel.served == 1 and channel.flushes == 0


@pytest.mark.parametrize(
    "request_",
    [
        FakeRequest(command="GET", path="/jobs"),
        FakeRequest(command="GET", path="/jobs/abc"),
        FakeRequest(command="POST", path="/jobs/batch"),
        FakeRequest(command="POST", path="/queues/default/pause"),
        FakeRequest(content_length=INLINE_MAX_BODY_BYTES + 1),
    ],
    ids=["list", "read-or-long-poll", "batch", "operator-action", "large-body"],
)
def test_every_other_request_goes_to_the_thread_pool(
    dispatcher: InlineDispatcher, request_: FakeRequest
) -> None:
    channel = FakeChannel(request=request_)
    dispatcher.add_task(channel)
    assert list(dispatcher.queue) == [channel] and not dispatcher.ready


def test_a_submission_pipelined_behind_a_pool_request_stays_in_the_pool(
    dispatcher: InlineDispatcher,
) -> None:
    # The pool thread that finished the previous request queues the next one itself.
    dispatcher.loop_thread = -1
    channel = FakeChannel()
    dispatcher.add_task(channel)
    assert list(dispatcher.queue) == [channel]


def test_a_client_not_reading_its_replies_is_served_by_the_pool(
    dispatcher: InlineDispatcher,
) -> None:
    channel = FakeChannel(total_outbufs_len=INLINE_MAX_BACKLOG_BYTES + 1)
    dispatcher.add_task(channel)
    assert list(dispatcher.queue) == [channel]


def test_a_slow_inline_submission_sends_submissions_to_the_pool_for_a_cool_down(
    dispatcher: InlineDispatcher, clock: FakeClock
) -> None:
    dispatcher.add_task(FakeChannel(served_for=SLOW_INLINE_S * 2, clock=clock))
    dispatcher.run_ready()

    during = FakeChannel()
    dispatcher.add_task(during)
    clock.now += COOL_DOWN_S
    after = FakeChannel()
    dispatcher.add_task(after)

    assert list(dispatcher.queue) == [during]
    assert list(dispatcher.ready) == [after]


def pool_spell_after_slow_submission(dispatcher: InlineDispatcher, clock: FakeClock) -> float:
    """Serves one slow submission inline; how long submissions then go to the pool."""
    dispatcher.add_task(FakeChannel(served_for=SLOW_INLINE_S * 2, clock=clock))
    dispatcher.run_ready()
    slow_ended = clock.now
    while not dispatcher.runs_inline(FakeChannel()):
        clock.now += 0.25
    return clock.now - slow_ended


def test_the_cool_down_doubles_while_inline_submissions_stay_slow(
    dispatcher: InlineDispatcher, clock: FakeClock
) -> None:
    spells = [pool_spell_after_slow_submission(dispatcher, clock) for _ in range(8)]
    assert spells == pytest.approx([1, 2, 4, 8, 16, 32, MAX_COOL_DOWN_S, MAX_COOL_DOWN_S])


def test_a_fast_inline_submission_resets_the_cool_down(
    dispatcher: InlineDispatcher, clock: FakeClock
) -> None:
    pool_spell_after_slow_submission(dispatcher, clock)
    pool_spell_after_slow_submission(dispatcher, clock)
    dispatcher.add_task(FakeChannel(served_for=SLOW_INLINE_S / 2, clock=clock))
    dispatcher.run_ready()
    assert pool_spell_after_slow_submission(dispatcher, clock) == pytest.approx(COOL_DOWN_S)


def test_fast_inline_submissions_keep_being_served_inline(
    dispatcher: InlineDispatcher, clock: FakeClock
) -> None:
    for _ in range(3):
        dispatcher.add_task(FakeChannel(served_for=SLOW_INLINE_S / 2, clock=clock))
        dispatcher.run_ready()
    assert not dispatcher.queue


def test_stop_during_an_inline_submission_lets_the_loop_answer_it_first() -> None:
    server = InlineServer(lambda environ, start: [], host="127.0.0.1", port=0, threads=1)
    try:
        server.dispatcher.running_inline = True
        server.stop()  # no SystemExit: the loop ends after this request has been answered
        assert server.stopping.is_set()
        server.dispatcher.running_inline = False
        with pytest.raises(SystemExit):
            server.stop()
    finally:
        server.dispatcher.shutdown()
        server.close()
