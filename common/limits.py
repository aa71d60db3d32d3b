"""A queue's rate and concurrency limits: what an operator sets (PUT /queues/{name}/limits) and
how it is kept in the queue's limits hash (Keys.limits). The scripts judge them at claim time
(common/scripts/_claim.lua: admit, charge, start_ids), so they hold across every worker."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workstream.common.errors import ValidationError

RATE_PATTERN = re.compile(r"([1-9][0-9]{0,6})/([smh])")
PERIOD_MS = {"s": 1000, "m": 60_000, "h": 3_600_000}
MAX_CONCURRENCY = 100_000
FIELDS = ("rate", "concurrency", "group_concurrency")
# The field of a queue's groups hash (Keys.groups) counting its parked jobs (_lib.lua's PARKED).
PARKED_FIELD = ":parked"


@dataclass(frozen=True)
class Limits:
    rate: str | None = None  # "<count>/<s|m|h>": jobs started per period, across all workers
    concurrency: int | None = None  # jobs of the queue processing at once
    group_concurrency: int | None = None  # jobs of one group processing at once

    @property
    def empty(self) -> bool:
        return self.rate is None and self.concurrency is None and self.group_concurrency is None

    @property
    def interval_ms(self) -> float | None:
        """The GCRA's emission interval: the time one job's start uses of the rate."""
        if self.rate is None:
            return None
        count, unit = self.rate.split("/")
        return PERIOD_MS[unit] / int(count)

    @classmethod
    def from_mapping(cls, data: Any) -> Limits:
        """From decoded JSON: every field optional, null or absent meaning no limit."""
        if not isinstance(data, Mapping):
            raise ValidationError("body", "expected a JSON object")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValidationError(unknown[0], "unknown field")
        rate = data.get("rate")
        if rate is not None and not (isinstance(rate, str) and RATE_PATTERN.fullmatch(rate)):
            raise ValidationError("rate", "expected '<count>/s', '/m' or '/h', e.g. '50/s'")
        return cls(
            rate=rate,
            concurrency=_cap("concurrency", data.get("concurrency")),
            group_concurrency=_cap("group_concurrency", data.get("group_concurrency")),
        )

    def to_hash(self) -> dict[str, str]:
        """The fields set; the scripts read interval_ms, concurrency and group_concurrency."""
        stored: dict[str, str] = {}
        if self.rate is not None:
            stored["rate"] = self.rate
            stored["interval_ms"] = repr(self.interval_ms)
        if self.concurrency is not None:
            stored["concurrency"] = str(self.concurrency)
        if self.group_concurrency is not None:
            stored["group_concurrency"] = str(self.group_concurrency)
        return stored

    @classmethod
    def from_hash(cls, values: Mapping[str, str | None]) -> Limits:
        def number(name: str) -> int | None:
            value = values.get(name)
            return None if value is None else int(value)

        return cls(values.get("rate"), number("concurrency"), number("group_concurrency"))

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "concurrency": self.concurrency,
            "group_concurrency": self.group_concurrency,
        }


def _cap(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_CONCURRENCY:
        raise ValidationError(name, f"expected an integer from 1 to {MAX_CONCURRENCY}, or null")
    return value
