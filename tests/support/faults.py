"""Small pieces the fault tests share: a script that keeps Redis BUSY, a deeply nested value."""

from __future__ import annotations

from typing import Any

import redis

# Lua that reads TIME until ARGV[1] microseconds have passed, writing nothing, so it ends by
# itself (no SCRIPT KILL needed); past busy-reply-threshold every other client gets BUSY.
SPIN_LUA = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then return 1 end
end
"""


def keep_busy(client: redis.Redis, seconds: float) -> None:
    """Runs SPIN_LUA for `seconds` on `client` (blocks the caller for as long)."""
    client.eval(SPIN_LUA, 0, round(seconds * 1_000_000))


def nested(depth: int) -> list[Any]:
    """A list nested `depth` levels deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value
