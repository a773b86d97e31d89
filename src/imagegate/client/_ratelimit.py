"""Client-side rate limiting for batches: a token bucket that follows what the server says.

Each job takes a `Ticket` (`RateGate.ticket(images=n)`): `ticket.take()` says how long to wait
before sending, and `ticket.observe` sees every answer to the job's request.

- `rate_per_minute` (the batch's `rate_limit`) is a client-side token bucket with a burst of
  `burst`; a 429 halves its rate and successes win it back 10% at a time.
- The server's own buckets are mirrored from `x-ratelimit-limit-*`, `-remaining-*` and
  `-reset-*` (kinds `requests` and `images`; a request takes 1 request and n images). Their
  limits are per minute, as at OpenAI and imagegate, so a bucket refills at limit/60 per second;
  the reset header (Go-style durations such as "1s", "6m0s", "20ms": the time until the bucket is
  full) gives its level to a fraction of a token. Requests reserved but not yet answered are
  subtracted, so when the bucket runs dry each job waits for the next token in turn (20 at
  once, then one every 3 s, on a free key), never for the whole bucket to refill.
- A kind the gate cannot mirror (no limit header, or OpenAI's `tokens`) with `remaining` 0
  pauses everyone until its reset.
- A 429 pauses everyone for its Retry-After (1 s if none), and the job's retry takes its place
  in the queue again. A Retry-After longer than `max_pause` (a per-day limit) pauses no one:
  waiting cannot help, so the job fails at once, saying when to come back.

Time is read from the injected clock, and the gate is thread-safe.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from imagegate.client._errors import retry_after
from imagegate.client._retry import should_retry

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = MappingProxyType(
    {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
)
DEFAULT_429_PAUSE = 1.0
DEFAULT_MAX_PAUSE = 60.0
WINDOW_KINDS = ("requests", "images", "tokens")  # x-ratelimit-{limit,remaining,reset}-<kind>
WINDOW_S = 60.0  # the x-ratelimit-limit-* numbers are per minute


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


@dataclass(slots=True)
class _Bucket:
    """The gate's copy of one of the server's token buckets (tokens may go below 0: a queue)."""

    limit: int
    tokens: float
    updated: float

    @property
    def rate(self) -> float:
        return self.limit / WINDOW_S

    def take(self, cost: float, now: float) -> float:
        """Take `cost` tokens; the seconds until they have refilled (0.0 when there now)."""
        self.tokens = min(float(self.limit), self.tokens + (now - self.updated) * self.rate) - cost
        self.updated = now
        return max(0.0, -self.tokens / self.rate)


def _server_level(limit: int, remaining: int, reset: float | None) -> float:
    """Tokens in the server's bucket: `remaining` is whole, the reset says the fraction."""
    if reset is None:
        return float(remaining)
    return min(max(float(remaining), limit - reset * limit / WINDOW_S), remaining + 0.999)


class Ticket:
    """One job's place at the gate; `observe` is the Observer its requests report to."""

    def __init__(self, gate: RateGate, costs: Mapping[str, float]) -> None:
        self.gate = gate
        self.costs = dict(costs)
        self.holding = False  # reserved and not yet answered
        self.seq = 0  # the order of its reservation among the batch's

    def take(self) -> float:
        """Reserve a place; the seconds to wait before sending."""
        return self.gate._take(self)

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Adapt to an answer; for one worth retrying, the seconds the retry must wait at least."""
        return self.gate._observe(self, status, headers)

    def close(self) -> None:
        """The job is over: what it reserved and was never answered no longer counts."""
        self.gate._release(self)


class RateGate:
    """Token buckets plus server-driven pauses, shared by a batch's workers."""

    def __init__(
        self,
        rate_per_minute: float | None,
        burst: int,
        clock: Callable[[], float],
        max_pause: float = DEFAULT_MAX_PAUSE,
    ) -> None:
        if rate_per_minute is not None and rate_per_minute <= 0:
            raise ValueError("rate_limit must be a positive number of requests per minute")
        self.clock = clock
        self.max_pause = max_pause
        self.configured = rate_per_minute / 60.0 if rate_per_minute else None  # requests per second
        self.rate = self.configured
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.updated = clock()
        self.paused_until = 0.0
        self.throttled = 0  # 429s seen
        self.server: dict[str, _Bucket] = {}
        self.holding: dict[int, Ticket] = {}  # reserved, not answered yet, by reservation order
        self._seq = 0
        self.synced: dict[str, int] = {}  # kind -> the reservation whose answer last set its bucket
        self._lock = threading.Lock()
        self._anonymous = Ticket(self, {"requests": 1, "images": 1})  # for callers without tickets

    def ticket(self, images: int = 1) -> Ticket:
        """A place for one job's request (of `images` images)."""
        return Ticket(self, {"requests": 1, "images": max(1, images)})

    def reserve(self) -> float:
        """Take a token for a request of one image (not followed while in flight); the wait."""
        with self._lock:
            wait = self._take_locked(self._anonymous, self.clock())
            self._release_locked(self._anonymous)
            return wait

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Adapt to an answer to a request that holds no ticket."""
        self._observe(self._anonymous, status, headers)

    def pause_left(self) -> float:
        """Seconds until a server-requested pause ends (0.0 when none)."""
        with self._lock:
            return max(0.0, self.paused_until - self.clock())

    def _take(self, ticket: Ticket) -> float:
        with self._lock:
            return self._take_locked(ticket, self.clock())

    def _take_locked(self, ticket: Ticket, now: float) -> float:
        wait = max(0.0, self.paused_until - now)
        if self.rate is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate) - 1.0
            self.updated = now
            wait = max(wait, -self.tokens / self.rate)
        for kind, cost in ticket.costs.items():
            bucket = self.server.get(kind)
            if bucket is not None:
                wait = max(wait, bucket.take(cost, now))
        self._seq += 1
        ticket.seq, ticket.holding = self._seq, True
        self.holding[ticket.seq] = ticket
        return wait

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            self._release_locked(ticket)

    def _release_locked(self, ticket: Ticket) -> None:
        if ticket.holding:
            del self.holding[ticket.seq]
            ticket.holding = False

    def _unseen(self, kind: str, after: int) -> float:
        """What requests reserved after number `after` will take: the server had not seen them."""
        return sum(t.costs.get(kind, 0.0) for seq, t in self.holding.items() if seq > after)

    def _observe(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> float | None:
        with self._lock:
            now = self.clock()
            self._release_locked(ticket)  # the server has counted (or refused) this request
            for kind in WINDOW_KINDS:
                self._sync(kind, headers, now, ticket)
            if status == 429:
                self.throttled += 1
                asked = retry_after(headers, now)
                if asked is not None and asked > self.max_pause:
                    return None  # a per-day limit: pausing everyone cannot help; the job fails
                self.paused_until = max(
                    self.paused_until, now + (asked if asked and asked > 0 else DEFAULT_429_PAUSE)
                )
                if self.rate is not None:
                    self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
                    self.updated = now
                    self.rate = max(self.rate / 2, 1 / 60.0)
            elif status < 400 and self.rate is not None and self.configured is not None:
                self.rate = min(self.configured, self.rate + self.configured * 0.1)
            if status < 400 or not should_retry(status, headers) or ticket is self._anonymous:
                return None
            return self._take_locked(ticket, now)  # the retry queues like any other request

    def _sync(self, kind: str, headers: Mapping[str, str], now: float, ticket: Ticket) -> None:
        """Copy the server's bucket of `kind` from an answer's headers (or pause on an unknown one)."""
        limit = headers.get(f"x-ratelimit-limit-{kind}", "").strip()
        remaining = headers.get(f"x-ratelimit-remaining-{kind}", "").strip()
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
        if not remaining.isdigit():
            return
        if kind in ticket.costs and limit.isdigit() and int(limit) > 0:
            if ticket.seq < self.synced.get(kind, 0):
                return  # an answer to a later request said more recently what is left
            self.synced[kind] = ticket.seq
            level = _server_level(int(limit), int(remaining), reset)
            # The server admits requests in about the order they were sent, so it has counted
            # those reserved before this one; those reserved after it will take their share still.
            self.server[kind] = _Bucket(int(limit), level - self._unseen(kind, ticket.seq), now)
        elif int(remaining) == 0 and reset:
            self.paused_until = max(self.paused_until, now + reset)
