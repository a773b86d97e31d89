"""Time, injectable: everything whose behaviour depends on time (expiry, retention) reads a Clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock for tests: it moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FrozenClock:
    """Always the same instant (IMAGEGATE_FROZEN_TIME: tests and benchmarks across processes)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at
