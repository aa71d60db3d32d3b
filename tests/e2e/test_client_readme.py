"""The README's Python client example runs as written against a live API and worker."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.stack import Api, Stack, wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_URL = "http://127.0.0.1:8080"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The Python client") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README's Python client section has no python block"
    return match.group(1)


@pytest.fixture
def api(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    stack = Stack(redis_server.url, tmp_path / "logs", env={"RETRY_BACKOFF": "0s"})
    try:
        stack.start_worker()
        api = stack.start_api()
        assert wait_until(lambda: bool(api.request("GET", "/workers")[1]["workers"]), 20)
        yield api
    finally:
        stack.stop_all()


def test_the_readme_python_client_example_runs(api: Api) -> None:
    code = readme_example()
    assert EXAMPLE_URL in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.replace(EXAMPLE_URL, api.url), "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert "409 invalid_transition" in " ".join(lines)  # the finished job cannot be cancelled
    assert lines[-1] == "True"  # health().ok
