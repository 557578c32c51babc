"""A virtual clock for fakeredis: time moves only when a test says so.

fakeredis reads the wall clock through ``time.time()`` of the modules that ``import
time``: the TIME command (which the scripts call for NOW), the per-command time that
key expiry compares against (PEXPIREAT on the namespace's hashes), hash-field expiry.
`VirtualClock.installed()` replaces the name ``time`` in every loaded fakeredis module
with a stand-in whose ``time()`` reads the virtual clock and whose other attributes are
the real module's, so nothing outside fakeredis (hypothesis, pytest, redis-py) sees a
changed clock.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis

START_MS = 1_800_000_000_000  # 2027-01-15: a fixed, plausible epoch in whole milliseconds


class _TimeModule:
    """Stands in for the ``time`` module inside fakeredis."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.time()

    def time_ns(self) -> int:
        return self._clock.ms * 1_000_000

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class VirtualClock:
    """Whole milliseconds since the epoch; starts at START_MS."""

    def __init__(self, start_ms: int = START_MS) -> None:
        self.ms = start_ms

    def time(self) -> float:
        return self.ms / 1000

    def now_ms(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        step = round(seconds * 1000)
        assert step >= 0, "a clock does not run backwards"
        self.ms += step

    def reset(self, start_ms: int = START_MS) -> None:
        self.ms = start_ms

    @contextmanager
    def installed(self) -> Iterator[VirtualClock]:
        """Make every loaded fakeredis module read this clock, for the block's duration."""
        assert fakeredis is not None  # imported so that its modules are loaded
        stand_in = _TimeModule(self)
        patched: list[Any] = []
        for name, module in list(sys.modules.items()):
            ours = name == "fakeredis" or name.startswith("fakeredis.")
            if ours and getattr(module, "time", None) is time:
                setattr(module, "time", stand_in)  # noqa: B010 (mypy: a module has no such attribute)
                patched.append(module)
        try:
            yield self
        finally:
            for module in patched:
                setattr(module, "time", time)  # noqa: B010
