"""Client-side rate limiting for batches: a token bucket that adapts to what the server says.

`RateGate.reserve()` returns how long to wait before the next request (a token bucket of
`rate_per_minute` with a burst of `burst`, plus any pause in force). `observe(status, headers)`
sees every answer: a 429 pauses everyone for its Retry-After (1 s if none) and halves the rate;
`x-ratelimit-remaining-requests: 0` pauses until `x-ratelimit-reset-requests` (Go-style
durations such as "1s", "6m0s", "20ms"; the same for imagegate's `-images` and OpenAI's
`-tokens` windows); successes win the rate back 10% at a time. Time is
read from the injected clock, and the gate is thread-safe.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

from imagegate.client._retry import retry_after

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = MappingProxyType({"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
                                  "ns": 1e-9})
DEFAULT_429_PAUSE = 1.0
WINDOW_KINDS = ("requests", "images", "tokens")  # x-ratelimit-{remaining,reset}-<kind>


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI reset header ("1s", "6m0s", "250ms", or a bare number of seconds)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


class RateGate:
    """Token bucket plus server-driven pauses, shared by a batch's workers."""

    def __init__(self, rate_per_minute: float | None, burst: int, clock: Callable[[], float]) -> None:
        if rate_per_minute is not None and rate_per_minute <= 0:
            raise ValueError("rate_limit must be a positive number of requests per minute")
        self.clock = clock
        self.configured = rate_per_minute / 60.0 if rate_per_minute else None  # requests per second
        self.rate = self.configured
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.updated = clock()
        self.paused_until = 0.0
        self.throttled = 0  # 429s seen
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def reserve(self) -> float:
        """Take a token; return the seconds to wait before sending (0.0 when free to go)."""
        with self._lock:
            now = self.clock()
            self._refill(now)
            wait = max(0.0, self.paused_until - now)
            if self.rate is None:
                return wait
            self.tokens -= 1.0
            if self.tokens < 0:
                wait = max(wait, -self.tokens / self.rate)
            return wait

    def pause_left(self) -> float:
        """Seconds until a server-requested pause ends (0.0 when none)."""
        with self._lock:
            return max(0.0, self.paused_until - self.clock())

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Adapt to one answer (status and lower-case headers)."""
        with self._lock:
            now = self.clock()
            if status == 429:
                self.throttled += 1
                asked = retry_after(headers, now)
                self.paused_until = max(self.paused_until, now + (asked if asked and asked > 0 else
                                                                  DEFAULT_429_PAUSE))
                if self.rate is not None:
                    self._refill(now)
                    self.rate = max(self.rate / 2, 1 / 60.0)
            elif status < 400 and self.rate is not None and self.configured is not None:
                self.rate = min(self.configured, self.rate + self.configured * 0.1)
            for kind in WINDOW_KINDS:
                remaining = headers.get(f"x-ratelimit-remaining-{kind}", "").strip()
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
                if remaining.isdigit() and int(remaining) == 0 and reset:
                    self.paused_until = max(self.paused_until, now + reset)
