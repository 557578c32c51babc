"""Long commands: progress on a terminal, Ctrl-C between bounded steps, readable times."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO


class Interrupted(Exception):
    """Ctrl-C arrived; the command stopped between two steps (exit status 130)."""


class Steps:
    """Counts a long command's bounded steps, shows progress on stderr when it is a
    terminal (never otherwise), and stops between steps once Ctrl-C was pressed."""

    def __init__(self, what: str, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.show = not quiet and self.stream.isatty()
        self.count = 0
        self._shown_at = 0.0
        self._stop = False

    def step(self, status: str) -> None:
        """After one bounded step: show `status`, then stop here if Ctrl-C was pressed."""
        self.count += 1
        now = time.monotonic()
        if self.show and now - self._shown_at >= 0.1:
            self._shown_at = now
            self.stream.write(f"\r\033[K{self.what}: {status}")
            self.stream.flush()
        if self._stop:
            self.clear()
            raise Interrupted(f"interrupted: {self.what} stopped after {self.count} step(s), between steps")

    def clear(self) -> None:
        if self.show and self._shown_at:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown_at = 0.0

    @contextmanager
    def interruptible(self) -> Iterator[Steps]:
        """Within: the first Ctrl-C asks to stop at the next step's end; a second one
        stops at once (KeyboardInterrupt)."""

        def on_sigint(_signum: int, _frame: FrameType | None) -> None:
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True

        try:
            previous = signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread: Ctrl-C keeps its usual meaning
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
            self.clear()


def time_left(deadline_ms: int | None, now_ms: int) -> str:
    """'never', 'expired', or 'in 23h59m' / 'in 4m12s' / 'in 12s' / 'in 3d4h'."""
    if deadline_ms is None:
        return "never expires"
    left = (deadline_ms - now_ms) // 1000
    if left <= 0:
        return "expires now"
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"in {days}d{hours}h"
    if hours:
        return f"in {hours}h{minutes:02d}m"
    if minutes:
        return f"in {minutes}m{seconds:02d}s"
    return f"in {seconds}s"
