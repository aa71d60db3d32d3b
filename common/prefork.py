"""One command, N processes: a parent that forks children and only supervises them.

One Python process runs on one core at a time (the GIL), so a multi-core host needs several.
The parent forks before it opens any Redis connection or starts any thread (a fork copies
only the calling thread, and a connection shared by two processes corrupts both), then
forwards SIGTERM/SIGINT, waits for every child, and replaces one that dies. A dead child
loses no job: the API accepts a job only once its Lua call has returned, and the sweeper
recovers a dead worker's jobs.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

# A child that dies this soon after its start, this many times in a row, is broken (a bad
# configuration or a Redis-independent crash): stop instead of forking forever.
EARLY_DEATH_S = 2.0
MAX_EARLY_DEATHS = 5
STOP_TIMEOUT_S = 30.0


class Supervisor:
    """Keeps `processes` children running `serve()` until SIGTERM/SIGINT.

    `component` ("api", "worker") prefixes the log events: "api.child_died", ...
    """

    def __init__(
        self,
        processes: int,
        serve: Callable[[], int],
        *,
        component: str,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.processes = processes
        self.serve = serve
        self.component = component
        self.stop_timeout_s = stop_timeout_s
        self.log = logging.getLogger(f"{component}.prefork")
        self.children: dict[int, float] = {}  # pid -> monotonic start time
        self.stopping = False
        self.early_deaths = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for _ in range(self.processes):
            self._fork()
        self._event(logging.INFO, "prefork_started", processes=self.processes)
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
                # A child still starting dies of the SIGTERM itself (serve() had not installed
                # its handler yet): nothing ran in it, so that is a clean stop too.
                clean = exit_code in (0, -signal.SIGTERM)
                status = status or (0 if clean else 1)
                continue
            self._event(logging.ERROR, "child_died", pid=pid, exit_code=exit_code)
            if time.monotonic() - started < EARLY_DEATH_S:
                self.early_deaths += 1
            else:
                self.early_deaths = 0
            if self.early_deaths >= MAX_EARLY_DEATHS:
                self._event(logging.ERROR, "children_keep_dying", deaths=self.early_deaths)
                self._signal_all(signal.SIGTERM)
                self.stopping = True
                status = 1
                continue
            self._fork()
        self._event(logging.INFO, "prefork_stopped", exit_code=status)
        return status

    def _event(self, level: int, name: str, **fields: object) -> None:
        self.log.log(level, f"{self.component}.{name}", extra=fields)

    def _fork(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: default signal handling until serve() installs its own
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _terminate_with_parent(parent)
                code = self.serve()
            except BaseException:  # the child must never return into the parent's loop
                self.log.exception(f"{self.component}.child_error")
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        signal.signal(signal.SIGALRM, self._kill)  # a child that ignores SIGTERM is killed
        signal.alarm(max(1, math.ceil(self.stop_timeout_s)))

    def _kill(self, signum: int, frame: FrameType | None) -> None:
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


PR_SET_PDEATHSIG = 1


def _terminate_with_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot forward anything: the kernel sends the child
    SIGTERM instead (Linux), so it drains and exits rather than living on as an orphan that
    reconnects to whatever Redis later listens on the same address."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the call: we were adopted already
            os.kill(os.getpid(), signal.SIGTERM)
