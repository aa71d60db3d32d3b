"""The API's HTTP server: plain waitress through its public API, every request in its pool.

waitress's event-loop thread accepts connections, reads requests and sends replies; each request
is served by one of its `API_THREADS` pool threads, so no Redis call ever runs in the loop
thread and a stalled Redis stalls only the requests that wait on it.

A reply leaves in one send: with waitress's default `send_bytes = 1` the pool thread sends the
header and the body separately as it writes them, which wakes the client twice and costs a
third of the API's CPU per `POST /jobs` on 2 cores. With `send_bytes` above a usual reply the
loop thread, woken anyway when the request is done, sends the whole reply at once (larger
replies still leave as they are written). `send_bytes` is a public adjustment that waitress
marks deprecated; waitress is pinned below 4, and a test fails if a reply takes two sends.

Thousands of connections must not end the server:
- the loop polls with poll(); select() cannot watch a descriptor numbered 1024 or more and
  raises ValueError out of the loop, which ended the process;
- the open-files limit is raised to its hard limit at start, and the connection limit is kept
  below it (the rest stay in the listen backlog until a connection closes): a full descriptor
  table would make accept() fail on every pass. waitress logs an accept() that fails anyway
  (descriptors used elsewhere) and keeps serving the connections it has.
"""

from __future__ import annotations

import logging
import resource
import socket
import threading
import time
from typing import Any, NamedTuple

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from workstream.api.prefork import BACKLOG
from workstream.common.settings import Settings

log = logging.getLogger(__name__)

# Idle keep-alive connections are cheap; poll() walks every one per pass, so a bound still helps.
CONNECTION_LIMIT = 10_000
# Descriptors kept free of connections: the Redis pool (API_THREADS + 8, counted apart), the
# listening sockets, the trigger pipe, log files and request bodies spooled to temporary files.
FD_RESERVE = 64
# Longer than the longest long-poll (60 s), so waitress never drops a waiting client.
CHANNEL_TIMEOUT_S = 120
# A stop lets requests in flight finish and their replies leave for this long (long-polls end
# at once: see app.py).
SHUTDOWN_TIMEOUT_S = 10
# Reply bytes buffered before a pool thread sends them itself; below this the loop sends the
# whole reply once the request is done.
SEND_BYTES = 64 * 1024
DRAIN_POLL_S = 0.05


class OpenFiles(NamedTuple):
    before: int
    soft: int
    hard: int


def raise_open_files_limit() -> OpenFiles:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit (capped where unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return OpenFiles(soft, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as ex:  # e.g. above fs.nr_open: keep what we have
        log.warning("api.open_files_not_raised", extra={"soft": soft, "error": str(ex)})
        return OpenFiles(soft, soft, hard)
    return OpenFiles(soft, wanted, hard)


def connection_limit(open_files: int, redis_connections: int) -> int:
    """As many connections as the descriptors left over allow, at most CONNECTION_LIMIT."""
    if open_files == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(1, min(CONNECTION_LIMIT, open_files - redis_connections - FD_RESERVE))


def adjustments(settings: Settings, connections: int) -> dict[str, Any]:
    """waitress's public adjustments for the API."""
    return {
        "threads": settings.api_threads,
        "connection_limit": connections,
        "asyncore_use_poll": True,
        "send_bytes": SEND_BYTES,
        "backlog": BACKLOG,
        "channel_timeout": CHANNEL_TIMEOUT_S,
        # Bodies far past the limit are refused by waitress before they are buffered; those
        # between the limit and this get the API's own JSON 413.
        "max_request_body_size": settings.max_payload_bytes * 2 + 65536,
        "ident": "workstream",
        "clear_untrusted_proxy_headers": True,
    }


class ApiServer:
    """A waitress server on one listening socket (api.prefork.listening_socket) and the loop
    that runs it until `stop()`."""

    def __init__(self, app: Any, sock: socket.socket, **adjustments: Any) -> None:
        self.socket_map: dict[int, Any] = {}
        server = create_server(app, map=self.socket_map, sockets=[sock], **adjustments)
        assert isinstance(server, BaseWSGIServer)  # one socket: one server, never a multi-server
        self.server = server
        self.port = int(sock.getsockname()[1])
        self._poll_timeout_s = float(server.adj.asyncore_loop_timeout)
        self.stopping = threading.Event()

    def serve(self) -> None:
        """Runs the loop until `stop()`, then drains. Call `close()` afterwards."""
        try:
            while self.socket_map and not self.stopping.is_set():
                self._poll(self._poll_timeout_s)
        finally:
            self._drain()

    def _poll(self, timeout_s: float) -> None:
        wasyncore.loop(timeout_s, map=self.socket_map, use_poll=True, count=1)

    def _drain(self) -> None:
        """Lets the requests in flight finish (queued ones are cancelled) and keeps the loop
        running until their replies have left, all within SHUTDOWN_TIMEOUT_S."""
        finishing = threading.Thread(
            target=self.server.task_dispatcher.shutdown,
            kwargs={"timeout": SHUTDOWN_TIMEOUT_S},
            name="api-drain",
        )
        finishing.start()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S + 1
        while time.monotonic() < deadline and (finishing.is_alive() or self._unsent()):
            self._poll(DRAIN_POLL_S)
        finishing.join(timeout=max(0.0, deadline - time.monotonic()))

    def _unsent(self) -> bool:
        return any(channel.writable() for channel in list(self.socket_map.values()))

    def stop(self) -> None:
        """Ends the loop after its current pass. Safe from a signal handler and from another
        thread: it sets an event and wakes the loop through waitress's trigger pipe."""
        self.stopping.set()
        self.server.pull_trigger()

    def close(self) -> None:
        """Closes every connection, the listening sockets and the trigger (all in the map)."""
        wasyncore.close_all(self.socket_map)
