"""API_PROCESSES > 1: several forked waitress processes serving one port.

One waitress process runs Python on one core at a time (the GIL), so on a multi-core host a
single container would leave cores idle. The parent forks the children before it opens any
Redis connection or thread, and then only supervises: it forwards SIGTERM/SIGINT, waits for
every child, and replaces a child that dies (a crashed child loses no accepted job: a job is
accepted only once its Lua call has returned). Each child binds the port with SO_REUSEPORT, so
the kernel spreads new connections evenly over the children; one shared socket would let the
process that happens to wake first take them all.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("api.prefork")

BACKLOG = 2048
# A child that dies this soon after its start, this many times in a row, is broken (a bad
# configuration or a Redis-independent crash): stop instead of forking forever.
EARLY_DEATH_S = 2.0
MAX_EARLY_DEATHS = 5
STOP_TIMEOUT_S = 30.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A child's own socket on the shared port (SO_REUSEPORT: the kernel balances)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


class Supervisor:
    """Keeps `processes` children running `serve()` until SIGTERM/SIGINT."""

    def __init__(self, processes: int, serve: Callable[[], int]) -> None:
        self.processes = processes
        self.serve = serve
        self.children: dict[int, float] = {}  # pid -> monotonic start time
        self.stopping = False
        self.early_deaths = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for _ in range(self.processes):
            self._fork()
        log.info("api.prefork_started", extra={"processes": self.processes})
        status = 0
        while self.children:
            try:
                pid, code = os.waitpid(-1, 0)  # signals interrupt it only to run _stop
            except ChildProcessError:
                break
            started = self.children.pop(pid, None)
            if started is None:
                continue
            exit_code = os.waitstatus_to_exitcode(code)
            if self.stopping:
                status = status or (0 if exit_code == 0 else 1)
                continue
            log.error("api.child_died", extra={"pid": pid, "exit_code": exit_code})
            if time.monotonic() - started < EARLY_DEATH_S:
                self.early_deaths += 1
            else:
                self.early_deaths = 0
            if self.early_deaths >= MAX_EARLY_DEATHS:
                log.error("api.children_keep_dying", extra={"deaths": self.early_deaths})
                self._signal_all(signal.SIGTERM)
                self.stopping = True
                status = 1
                continue
            self._fork()
        log.info("api.prefork_stopped", extra={"exit_code": status})
        return status

    def _fork(self) -> None:
        pid = os.fork()
        if pid == 0:  # the child: default signal handling until serve() installs its own
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = self.serve()
            except BaseException:  # the child must never return into the parent's loop
                log.exception("api.child_error")
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        signal.signal(signal.SIGALRM, self._kill)  # a child that ignores SIGTERM is killed
        signal.alarm(int(STOP_TIMEOUT_S))

    def _kill(self, signum: int, frame: FrameType | None) -> None:
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
