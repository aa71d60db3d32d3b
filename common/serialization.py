"""JSON in and out of Redis and HTTP, in one place (data only, never serialized code)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON; NaN/Infinity are rejected because other languages cannot read them."""
    return _ENCODER.encode(value)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


# The last second formatted, as (epoch second, "YYYY-MM-DDTHH:MM:SS."): a job's timestamps and
# those of the jobs submitted around it mostly share their second, and strftime is most of
# the cost of a job's JSON (5 timestamps per job). Replaced whole, so threads need no lock.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00.")


def ms_to_rfc3339(ms: int | None) -> str | None:
    global _last_second
    if ms is None:
        return None
    second, millis = divmod(ms, 1000)
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _last_second = (second, prefix)
    return f"{prefix}{millis:03d}Z"


def rfc3339_to_ms(text: str) -> int:
    """Parses an RFC 3339 timestamp with an explicit offset; raises ValueError otherwise."""
    normalized = text.strip()
    if normalized.endswith(("Z", "z")):
        normalized = normalized[:-1] + "+00:00"
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a timezone offset such as Z or +02:00")
    return round(moment.timestamp() * 1000)
