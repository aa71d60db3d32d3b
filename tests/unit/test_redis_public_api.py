"""scripts.py and store.py reach Redis through redis-py's public API only (issue 15): no
connection objects, hand-packed commands or replies read by hand."""

from __future__ import annotations

from importlib import resources

import pytest

PRIVATE = (
    "hiredis",
    "send_packed_command",
    "read_response",
    "get_connection",
    ".connection.",
    "redis.connection",
    "._",
)


@pytest.mark.parametrize("module", ["scripts.py", "store.py"])
def test_the_redis_layer_uses_only_public_redis_py_calls(module: str) -> None:
    source = resources.files("workstream.common").joinpath(module).read_text(encoding="utf-8")
    found = [word for word in PRIVATE if word in source.replace("self._", "self.")]
    assert found == [], module
