"""Small submissions answered in waitress's loop thread; everything else in its thread pool.

waitress hands each request to a worker thread and back: a condition-variable wake-up, GIL
hand-offs between the two threads and a trigger-pipe write to wake the loop (strace: ~44 futex
calls per POST /jobs with 8 clients). A submission is one Redis round trip, shorter than that
hand-off, so POST /jobs with a small body runs in the loop thread itself. Three rules keep that
from ever stalling the loop for long:

- only submissions run there; long-polls, batches and reads keep the thread pool;
- a client that is not reading its replies is served by the pool (an inline reply must never
  wait on the loop for buffer space, which would deadlock it);
- after a slow inline submission (Redis unreachable or overloaded) submissions go to the pool
  for a cool-down, so one stalled Redis call holds the loop once, not once per request; the
  cool-down doubles while inline submissions keep being slow (a Redis that stays stalled holds
  the loop at most once a minute) and starts over after a fast one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
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


class InlineDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool, except that small submissions read by the loop thread are
    queued in `ready` and served by that thread (`run_ready`) once its poll returns."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.ready: deque[Any] = deque()
        self.loop_thread: int | None = None
        self.running_inline = False
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
        """Serves every queued channel (and requests pipelined behind them) in this thread."""
        self.running_inline = True
        try:
            while self.ready:
                channel = self.ready.popleft()
                started = self._clock()
                channel.service()
                finished = self._clock()
                if finished - started <= SLOW_INLINE_S:
                    self._cool_down_s = COOL_DOWN_S
                    continue
                self._pool_until = finished + self._cool_down_s
                self._cool_down_s = min(self._cool_down_s * 2, MAX_COOL_DOWN_S)
        finally:
            self.running_inline = False


class InlineServer:
    """A waitress server with an InlineDispatcher, and the loop that serves both."""

    def __init__(self, app: Any, sock: socket.socket | None = None, **adjustments: Any) -> None:
        self.dispatcher = InlineDispatcher()
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
        self.stopping = threading.Event()

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
        self.server.pull_trigger()

    def close(self) -> None:
        """Closes every channel, the listening socket and the trigger (all in the map)."""
        wasyncore.close_all(self.socket_map)
