"""JSON in and out of Redis and HTTP, in one place (data only, never serialized code)."""

from __future__ import annotations

import enum
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

# How deep a payload or a result may nest (containers inside containers). One limit for
# what the API accepts and what dumps writes, well inside orjson's own (254) and Python's
# recursion limit, so a value accepted on the way in can always be written and read back.
MAX_NESTING = 64


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


_TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"
# Structure only: brackets (objects spelled as arrays), quotes, and the separators that keep
# two strings from touching once their text is gone.
_STRUCTURE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}",:')
_STRING = re.compile(rb'"[^"]*"')


def _brackets_outside_strings(text: bytes) -> bytes:
    """The text's brackets outside its strings, every pass a C-speed scan (a regex over each
    string costs ~0.25 us a string)."""
    if b"\\" in text:
        # Escapes are two characters: \\ pairs first (left to right), then \" pairs.
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    # A string whose text held no bracket is now "" (never two strings: a separator parts
    # them); what quotes remain wrap strings that did hold brackets, rare enough for a regex.
    shape = text.translate(_STRUCTURE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in shape:
        shape = _STRING.sub(b"", shape)
    return shape.translate(None, b",:")


def nests_too_deep(text: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether JSON text nests containers more than `limit` deep, judged on the text (a walk
    over the value in Python costs ~0.4 us a container)."""
    # Each container writes two brackets, so short text is shallow, and so is text with few
    # opening brackets (those inside strings only make the count safer).
    if len(text) <= 2 * limit or text.count(b"[") + text.count(b"{") <= limit:
        return False
    # Each replace removes the innermost level only (it does not rescan what it joined), so
    # the passes needed are the depth.
    brackets = _brackets_outside_strings(text)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def dumps(value: Any) -> str:
    """Compact JSON; NaN/Infinity are rejected because other languages cannot read them.
    orjson would write them as null, so output holding a null is the standard encoder's call.
    Text that is not valid UTF-8 (a lone surrogate) and values nested deeper than MAX_NESTING
    raise ValueError here, not in Redis or in a reader's RecursionError."""
    out = _fast(value)
    if out is not None and b"null" not in out:
        if nests_too_deep(out):
            raise ValueError(_TOO_DEEP)
        return out.decode()
    try:
        text = _ENCODER.encode(value)
    except RecursionError:  # deeper than orjson's own limit, and than Python's
        raise ValueError(_TOO_DEEP) from None
    # encode() raises UnicodeEncodeError (a ValueError) on a lone surrogate.
    if nests_too_deep(text.encode()):
        raise ValueError(_TOO_DEEP)
    return text


def dumps_reply(value: Any) -> bytes:
    """An HTTP reply body. Its payloads and results were written by dumps, so they hold no
    NaN to reject, and the nulls every job carries need no second look. What orjson declines
    is written as ASCII: an error may quote a client's lone surrogate, which UTF-8 cannot hold
    but a JSON escape can."""
    out = _fast(value)
    return _ASCII_ENCODER.encode(value).encode() if out is None else out


def loads(text: str | bytes) -> Any:
    # Not orjson.loads, though it is faster: it reads an integer past 64 bits as a float, and a
    # payload's 123456789012345678901234567890 must reach the handler as it was sent.
    return json.loads(text)


# The last second formatted, as (epoch second, "YYYY-MM-DDTHH:MM:SS."): a job's timestamps and
# those of the jobs submitted around it mostly share their second, and strftime is most of
# the cost of a job's JSON (5 timestamps per job). Replaced whole, so threads need no lock.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00.")


# The span a four-digit year can spell, in ms since the epoch.
FIRST_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
LAST_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def ms_to_rfc3339(ms: int | None) -> str | None:
    """A stored time as RFC 3339; one outside years 1-9999 (written by older code or by hand)
    is clamped to the nearest time that can be spelled, so a record always renders."""
    global _last_second
    if ms is None:
        return None
    second, millis = divmod(ms, 1000)
    cached_second, prefix = _last_second
    if second != cached_second:
        if not FIRST_MS <= ms <= LAST_MS:
            return ms_to_rfc3339(min(max(ms, FIRST_MS), LAST_MS))
        # isoformat, not strftime: glibc's %Y does not pad years before 1000 to four digits.
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).isoformat()[:19] + "."
        _last_second = (second, prefix)
    return f"{prefix}{millis:03d}Z"


# RFC 3339's date-time (Python's fromisoformat alone also takes week dates and basic format).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def rfc3339_to_ms(text: str) -> int:
    """Parses an RFC 3339 timestamp with an explicit offset; raises ValueError otherwise."""
    normalized = text.strip()
    if not _RFC3339.fullmatch(normalized):
        raise ValueError("expected a time such as 2030-01-01T09:30:00Z or +02:00 for the offset")
    if normalized.endswith(("Z", "z")):
        normalized = normalized[:-1] + "+00:00"
    moment = datetime.fromisoformat(normalized)
    return round(moment.timestamp() * 1000)
