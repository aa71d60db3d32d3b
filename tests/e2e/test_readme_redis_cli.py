"""Every redis-cli command in the README, run against a live stack, answers what it says."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.stack import Api, Stack, wait_until

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
PREFIX = 'redis-cli -u "$REDIS_URL" '


def _readme_commands() -> list[str]:
    block = README[README.index("<!-- redis-cli") : README.index("<!-- /redis-cli -->")]
    return [line[len(PREFIX) :] for line in block.splitlines() if line.startswith(PREFIX)]


def _wait_status(api: Api, job_id: str, status: str) -> None:
    assert wait_until(lambda: api.request("GET", f"/jobs/{job_id}")[1]["status"] == status, 20)


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_each_readme_redis_cli_command_shows_what_the_readme_says(
    stack: Stack, redis_server: RedisServer
) -> None:
    api = stack.start_api()
    stack.start_worker({"SHUTDOWN_GRACE": "1s"})
    failed = api.request("POST", "/jobs", {"type": "fail", "payload": {"permanent": True}})[1]
    _wait_status(api, failed["id"], "failed")
    running = api.request("POST", "/jobs", {"type": "sleep", "payload": {"seconds": 60}})[1]
    _wait_status(api, running["id"], "processing")
    api.request("POST", "/queues/default/pause")
    for n in range(3):
        api.request("POST", "/jobs", {"type": "echo", "payload": n})
    delayed = api.request("POST", "/jobs", {"type": "echo", "delay": 300})[1]
    worker_id = api.request("GET", "/workers")[1]["workers"][0]["id"]
    now_ms = time.time() * 1000

    def lines(output: str) -> list[str]:
        return output.splitlines()

    checks: dict[str, Callable[[str], bool]] = {
        "LLEN 'ws:{default}:queue:default'": lambda out: out.strip() == "3",
        "LRANGE 'ws:{default}:processing:<worker-id>' 0 -1": lambda out: (
            lines(out) == [running["id"]]
        ),
        "ZRANGE 'ws:{default}:workers' 0 -1 WITHSCORES": lambda out: (
            lines(out)[0] == worker_id and abs(float(lines(out)[1]) - now_ms) < 60_000
        ),
        "HGETALL 'ws:{default}:job:<job-id>'": lambda out: (
            "status" in lines(out) and lines(out)[lines(out).index("status") + 1] == "failed"
        ),
        "HMGET 'ws:{default}:job:<job-id>' status error": lambda out: (
            lines(out) == ["failed", "PermanentError: failed permanently on request"]
        ),
        "ZRANGE 'ws:{default}:scheduled:default' 0 -1 WITHSCORES": lambda out: (
            lines(out)[0] == delayed["id"] and float(lines(out)[1]) > now_ms + 200_000
        ),
        "ZRANGE 'ws:{default}:dead:default' 0 -1": lambda out: lines(out) == [failed["id"]],
        "HGETALL 'ws:{default}:inflight'": lambda out: lines(out) == ["default", "1"],
        "HGETALL 'ws:{default}:stats'": lambda out: (
            "created|default|echo" in lines(out)
            and lines(out)[lines(out).index("created|default|echo") + 1] == "4"
        ),
        "SMEMBERS 'ws:{default}:paused'": lambda out: lines(out) == ["default"],
    }
    assert sorted(_readme_commands()) == sorted(checks)
    for command, check in checks.items():
        concrete = command.replace("<worker-id>", worker_id).replace("<job-id>", failed["id"])
        argv = ["redis-cli", "-u", redis_server.url, *shlex.split(concrete)]
        output = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
        assert check(output.stdout), f"{command!r} printed {output.stdout!r}"
