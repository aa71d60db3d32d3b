"""The README's "Your first handler" walk-through, run as written: its `first-handler` blocks
in order, terminal 2 as one bash session, terminal 1 as `make run`'s own command (the
Makefile's run recipe, `$(BIN)/workstream dev`, checked below), on a free PORT in a fresh
directory. A handler with a bug fails its job with the traceback in `history`; fixed, the
stack restarted and the job retried, it completes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import free_port
from tests.support.stack import BIN

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- first-handler: step (\d+), terminal ([12]) -->\n```sh\n(.*?)```", re.S)
STARTED = re.compile(r"^started (?:redis|api|worker) pid=(\d+)")
READY_TIMEOUT_S = 60
STEP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 40
DONE = "__step_done__"


def readme_steps() -> list[tuple[int, str]]:
    """(terminal, script) per block, in step order."""
    found = BLOCK.findall((ROOT / "README.md").read_text())
    assert [int(step) for step, _, _ in found] == list(range(1, len(found) + 1)), found
    return [(int(terminal), script) for _, terminal, script in found]


def make_run_command() -> str:
    """What `make run` runs once its virtualenv exists."""
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].splitlines()[1].strip()
    assert recipe == "$(BIN)/workstream dev", recipe
    return f"{BIN / 'workstream'} dev"


class Lines:
    """A pipe read by a thread into a queue, so every wait is bounded by time."""

    def __init__(self, stream: Any) -> None:
        self.pending: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.pending.put(line.rstrip("\n"))
        self.pending.put(None)

    def until(self, done: Any, timeout_s: float) -> list[str]:
        got: list[str] = []
        while True:
            try:
                line = self.pending.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"timed out; so far: {got[-20:]}") from None
            if line is None:
                raise AssertionError(f"the process ended; it said: {got[-20:]}")
            self.seen.append(line)
            if done(line):
                return got
            got.append(line)


class Shell:
    """Terminal 2: one bash session, so variables set by a step live on to the next."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = Lines(self.popen.stdout)

    def run(self, script: str) -> str:
        assert self.popen.stdin is not None
        self.popen.stdin.write(f"{script}\necho {DONE} $?\n")
        self.popen.stdin.flush()
        status: list[str] = []

        def done(line: str) -> bool:
            if line.startswith(DONE):
                status.append(line.split()[1])
                return True
            return False

        out = "\n".join(self.lines.until(done, STEP_TIMEOUT_S))
        assert status == ["0"], out
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.popen.stdin is not None:
                self.popen.stdin.close()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


class Stack:
    """Terminal 1: the step's command in its own process group, so Ctrl-C is a SIGINT to it."""

    def __init__(self, script: str, cwd: Path, env: dict[str, str]) -> None:
        command = script.replace("make run", make_run_command())
        self.stderr = cwd / f"terminal-1.{os.getpid()}.{id(self)}.stderr"
        with open(self.stderr, "wb") as stderr:
            self.popen = subprocess.Popen(
                ["bash", "-c", command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        self.lines = Lines(self.popen.stdout)

    def wait_ready(self) -> None:
        try:
            self.lines.until(lambda line: line == "Press Ctrl-C to stop.", READY_TIMEOUT_S)
        except AssertionError as ex:  # the banner's last line never came: say why
            stderr = self.stderr.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{ex}\n{stderr}") from None

    def ctrl_c(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGINT)
        try:
            return self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return self.popen.wait(10)

    def children(self) -> list[int]:
        return [int(m.group(1)) for m in map(STARTED.match, self.lines.seen) if m]


def last_json(output: str) -> dict[str, Any]:
    """The last JSON document a step printed."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(output):
        start = output.find("{", at)
        if start < 0:
            break
        try:
            value, at = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        found.append(value)
    assert found and isinstance(found[-1], dict), output
    return found[-1]


@pytest.fixture
def terminals(tmp_path: Path) -> Iterator[tuple[Shell, list[Stack], dict[str, str]]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "API_TOKEN", "WORKER_HANDLERS", "PYTHONPATH")
    }
    env.update(
        PORT=str(free_port()),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        SHUTDOWN_GRACE="5s",
        PYTHONUNBUFFERED="1",
    )
    shell = Shell(tmp_path, env)
    stacks: list[Stack] = []
    try:
        yield shell, stacks, env
    finally:
        shell.close()
        for stack in stacks:
            if stack.popen.poll() is None:
                stack.ctrl_c()
            for pid in stack.children():  # the safety net: whatever it started and left
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_the_first_handler_walk_through_runs_as_written(
    tmp_path: Path, terminals: tuple[Shell, list[Stack], dict[str, str]]
) -> None:
    shell, stacks, env = terminals
    steps = readme_steps()
    assert [terminal for terminal, _ in steps] == [2, 1, 2, 2, 2]
    write, make_run, submit, fix, retry = (script for _, script in steps)

    shell.run(write)
    stacks.append(Stack(make_run, tmp_path, env))
    stacks[-1].wait_ready()
    assert "  Handlers: myapp.jobs" in stacks[-1].lines.seen

    failed = last_json(shell.run(submit))
    assert (failed["status"], failed["error"]) == ("failed", "KeyError: 'nmae'"), failed
    attempt = failed["history"][-1]
    assert attempt["outcome"] == "failed"
    assert "myapp/jobs.py" in attempt["traceback"] and "KeyError: 'nmae'" in attempt["traceback"]

    shell.run(fix)
    assert stacks[-1].ctrl_c() == 0  # Ctrl-C in terminal 1, then step 2 again
    stacks.append(Stack(make_run, tmp_path, env))
    stacks[-1].wait_ready()

    done = last_json(shell.run(retry))
    assert (done["status"], done["result"]) == ("completed", {"greeting": "Hello, Ada!"}), done
    assert [entry["outcome"] for entry in done["history"]] == ["failed", "completed"]
