"""JSON in and out of Redis and HTTP, in one place (data only, never serialized code)."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson


def _default(value: Any) -> Any:
    """What the standard encoder makes of the types orjson writes natively, so that both paths
    accept the same values."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
)
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_default)
# Values orjson would write differently from the standard encoder go to it instead:
# datetimes, dataclasses and subclasses of builtins (orjson raises on them with these options).
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _fast(value: Any) -> bytes | None:
    """orjson's encoding (~10x faster on small payloads and replies), or None where it declines:
    integers beyond 64 bits, non-string keys, subclasses, lone surrogates."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError included
        return None


def dumps(value: Any) -> str:
    """Compact JSON; NaN/Infinity are rejected because other languages cannot read them.
    orjson would write them as null, so output holding a null is the standard encoder's call.
    Text that is not valid UTF-8 (a lone surrogate) raises ValueError here, not in Redis."""
    out = _fast(value)
    if out is None or b"null" in out:
        text = _ENCODER.encode(value)
        text.encode()  # raises UnicodeEncodeError (a ValueError) on a lone surrogate
        return text
    return out.decode()


def dumps_reply(value: Any) -> bytes:
    """An HTTP reply body. Its payloads and results were written by dumps, so they hold no
    NaN to reject, and the nulls every job carries need no second look. What orjson declines
    is written as ASCII: an error may quote a client's lone surrogate, which UTF-8 cannot hold
    but a JSON escape can."""
    out = _fast(value)
    return _ASCII_ENCODER.encode(value).encode() if out is None else out


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
