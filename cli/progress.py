"""A one-line progress bar on stderr, redrawn in place with a carriage return, at most every
`min_interval_s`. Disabled, it writes nothing (output piped to a file stays clean)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30


def render(done: int, total: int, elapsed_s: float, label: str, width: int = BAR_WIDTH) -> str:
    """`label [#####.....]  500/1000  50%  1234/s` (pure: tested without a terminal)."""
    total = max(total, 1)
    done = min(max(done, 0), total)
    filled = done * width // total
    bar = "#" * filled + "." * (width - filled)
    percent = done * 100 // total
    rate = f"{done / elapsed_s:.0f}/s" if elapsed_s > 0 else "-/s"
    digits = len(str(total))
    return f"{label} [{bar}] {done:>{digits}}/{total} {percent:>3}% {rate}"


class ProgressBar:
    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        enabled: bool,
        label: str = "submitting",
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self._stream = stream
        self._label = label
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None
        self._width = 0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if (
            self._last_draw is not None
            and now - self._last_draw < self._min_interval_s
            and done < self.total
        ):
            return
        self._last_draw = now
        line = render(done, self.total, now - self._started, self._label)
        # Pad over a longer previous line (the rate can shrink).
        self._stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self._stream.flush()

    def finish(self) -> None:
        """Ends the line so later output starts clean."""
        if self.enabled and self._last_draw is not None:
            self._stream.write("\n")
            self._stream.flush()
