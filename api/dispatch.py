"""Small submissions answered in waitress's loop thread; everything else in its thread pool.

waitress hands each request to a worker thread and back: a condition-variable wake-up, GIL
hand-offs between the two threads and a trigger-pipe write to wake the loop (strace: ~44 futex
calls per POST /jobs with 8 clients). A submission is one Redis round trip, shorter than that
hand-off, so POST /jobs with a small body runs in the loop thread itself. Three rules keep that
from ever stalling the loop for long:

- only submissions run there; long-polls, batches and reads keep the thread pool;
- a client that is not reading its replies is served by the pool (an inline reply must never
  wait on the loop for buffer space, which would deadlock it);
- after a slow inline pass (Redis unreachable or overloaded) submissions go to the pool for a
  cool-down, so one stalled Redis call holds the loop once, not once per request; the
  cool-down doubles while inline passes keep being slow (a Redis that stays stalled holds the
  loop at most once a minute) and starts over after a fast one.

The submissions one poll made ready are served as one pass, whose enqueues can share one Redis
call (api.group_commit). An inline reply leaves in one send as soon as it is complete, and the
loop does not wake itself through the trigger pipe.
"""

from __future__ import annotations

import copy
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ThreadedTaskDispatcher

INLINE_PATHS = frozenset({"/jobs", "/job"})
INLINE_MAX_BODY_BYTES = 64 * 1024
# Unsent reply bytes on a channel above which its next request goes to the pool; far below
# waitress's outbuf_high_watermark (16 MiB), where a reply would wait for the loop to drain it.
INLINE_MAX_BACKLOG_BYTES = 256 * 1024
SLOW_INLINE_S = 0.05
COOL_DOWN_S = 1.0
MAX_COOL_DOWN_S = 60.0

Task = Callable[[], None]


class InlineDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool, except that small submissions read by the loop thread are
    queued in `ready` and served by that thread (`run_ready`) once its poll returns."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        serve_together: Callable[[Sequence[Task]], None] | None = None,
    ) -> None:
        super().__init__()
        self.ready: deque[Any] = deque()
        self.loop_thread: int | None = None
        self.running_inline = False
        # Set by InlineServer: the server's adjustments, except that replies are held until
        # complete (see _serve).
        self.holding_adj: Any = None
        self._serve_together = serve_together or _one_after_another
        self._clock = clock
        self._pool_until = 0.0
        self._cool_down_s = COOL_DOWN_S

    def add_task(self, task: Any) -> None:
        # `task` is an HTTPChannel whose requests[0] is complete. add_task is called with the
        # channel's requests_lock held, so the loop only queues it here and serves it later.
        if threading.get_ident() == self.loop_thread and self.runs_inline(task):
            self.ready.append(task)
        else:
            super().add_task(task)

    def runs_inline(self, channel: Any) -> bool:
        request = channel.requests[0]
        return (
            request.command == "POST"
            and request.path in INLINE_PATHS
            and request.content_length <= INLINE_MAX_BODY_BYTES
            and channel.total_outbufs_len <= INLINE_MAX_BACKLOG_BYTES
            and self._clock() >= self._pool_until
        )

    def run_ready(self) -> None:
        """Serves every queued channel (and requests pipelined behind them) in this thread:
        what one poll made ready is served as one pass, together (see api.group_commit)."""
        self.running_inline = True
        try:
            while self.ready:
                channels = list(self.ready)
                self.ready.clear()
                started = self._clock()
                self._serve_together([partial(self._serve, channel) for channel in channels])
                finished = self._clock()
                if finished - started <= SLOW_INLINE_S:
                    self._cool_down_s = COOL_DOWN_S
                    continue
                self._pool_until = finished + self._cool_down_s
                self._cool_down_s = min(self._cool_down_s * 2, MAX_COOL_DOWN_S)
        finally:
            self.running_inline = False

    def _serve(self, channel: Any) -> None:
        # waitress sends as soon as anything is written (send_bytes = 1): a reply's header and
        # body in two sends, and two wake-ups of the client. Held until the request is done,
        # the reply goes out in one send, right away rather than at the loop's next pass.
        served_adj = channel.adj
        channel.adj = self.holding_adj or served_adj
        try:
            channel.service()
        finally:
            channel.adj = served_adj
        if channel.connected:
            channel.handle_write()


def _one_after_another(tasks: Sequence[Task]) -> None:
    for task in tasks:
        task()


class InlineServer:
    """A waitress server with an InlineDispatcher, and the loop that serves both."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket | None = None,
        serve_together: Callable[[Sequence[Task]], None] | None = None,
        **adjustments: Any,
    ) -> None:
        self.dispatcher = InlineDispatcher(serve_together=serve_together)
        self.dispatcher.set_thread_count(adjustments.get("threads", 4))
        self.socket_map: dict[int, Any] = {}
        where: dict[str, Any] = {"sockets": [sock]} if sock else {}
        # `_dispatcher` is the hook waitress's own tests use to supply a dispatcher (a private
        # parameter, hence waitress pinned below 4 and tests that fail if it stops working).
        server = create_server(
            app, map=self.socket_map, _dispatcher=self.dispatcher, **where, **adjustments
        )
        assert isinstance(server, BaseWSGIServer)
        self.server = server
        self._wake_loop: Callable[[], None] = server.trigger.pull_trigger  # type: ignore[attr-defined]
        self.dispatcher.holding_adj = copy.copy(server.adj)
        self.dispatcher.holding_adj.send_bytes = sys.maxsize
        server.pull_trigger = self._pull_trigger  # type: ignore[method-assign]
        self.stopping = threading.Event()

    def _pull_trigger(self) -> None:
        # waitress wakes its loop through a pipe after every request served. The loop thread
        # itself polls again as soon as it has served what is ready (poll asks every channel
        # whether it has output), so from there the pipe's write and read are wasted.
        if threading.get_ident() != self.dispatcher.loop_thread:
            self._wake_loop()

    @property
    def port(self) -> int:
        return int(getattr(self.server, "effective_port", 0))

    def serve(self) -> None:
        """Runs until `stop()` (or SystemExit); requests in the pool finish or are cancelled."""
        self.dispatcher.loop_thread = threading.get_ident()
        poll = wasyncore.poll2 if self.server.adj.asyncore_use_poll else wasyncore.poll
        idle_timeout = self.server.adj.asyncore_loop_timeout
        try:
            while self.socket_map and not self.stopping.is_set():
                poll(idle_timeout, self.socket_map)
                self.dispatcher.run_ready()  # leaves `ready` empty
        except (SystemExit, KeyboardInterrupt):
            pass
        finally:
            self.dispatcher.shutdown()

    def stop(self) -> None:
        """From a signal handler in the loop thread: ends the loop now, or right after the
        inline submission being served has been answered."""
        self.stopping.set()
        if not self.dispatcher.running_inline:
            raise SystemExit(0)

    def stop_from_thread(self) -> None:
        """From another thread: the loop wakes through its trigger and sees `stopping`."""
        self.stopping.set()
        self._wake_loop()

    def close(self) -> None:
        """Closes every channel, the listening socket and the trigger (all in the map)."""
        wasyncore.close_all(self.socket_map)
