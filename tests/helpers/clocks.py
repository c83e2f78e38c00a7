"""Clocks a test moves instead of waiting for them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SettableClock:
    """Wall-clock time the test sets: `clock.now = ...` or `clock.advance(90)`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def timestamp(self) -> float:
        """`now` in epoch seconds: the same time for a stand-in that keeps a monotonic clock."""
        return self.now.timestamp()


class Ticker:
    """A monotonic clock (seconds) that moves only when the test, or the code's `sleep`, moves
    it; every sleep is remembered."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class OffsetClock:
    """Real time plus an offset the test moves, for two parties that must see the same jump
    (a stand-in's monotonic clock and the code's wall clock), as if that much time had passed."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def utc(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)
