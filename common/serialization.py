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


def ms_to_rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def rfc3339_to_ms(text: str) -> int:
    """Parses an RFC 3339 timestamp with an explicit offset; raises ValueError otherwise."""
    normalized = text.strip()
    if normalized.endswith(("Z", "z")):
        normalized = normalized[:-1] + "+00:00"
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a timezone offset such as Z or +02:00")
    return round(moment.timestamp() * 1000)
