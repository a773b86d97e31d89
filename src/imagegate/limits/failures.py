"""Failed sign-ins per client address: the admin key (the admin API, the console) and the
console's sign-in with an API key.

An operator picks the admin key, and nothing made it long: without a cap, anyone who can reach
the port could guess it as fast as the server answers. After `max_failures` wrong keys from one
address within `window_s` of its first failure, every attempt from that address is refused (429,
`too_many_failed_attempts`, with Retry-After) until the window ends, the right key included, so
a guess that lands during the block cannot be told from one that missed. A correct key before
that costs nothing and does not clear the count.

The key is compared first; then one atomic step either counts the failure (and says whether it
was past the limit) or, for the right key, reads whether the address is blocked. So concurrent
guesses cannot all pass a check made before any of them was counted: only `max_failures` wrong
keys a window answer 401, every later one 429, and the right key is let in only while fewer than
`max_failures` failures are counted (a guess in a burst wins only if it is among the first).

The count is kept where the rate limits are (limits/__init__.py): this process, the file every
worker of `serve --workers N` opens, or Redis for replicas. Redis out of reach: 503, as the rate
limiter answers by default; never an unchecked guess. Time is the caller's `now`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from redis.exceptions import RedisError

from imagegate.errors import RateLimited, ServiceUnavailable
from imagegate.limits.duration import go_duration
from imagegate.records import Codec, FileRecords, MemoryRecords, Records

log = logging.getLogger("imagegate.limits")


class FailedAttempts(Protocol):
    async def blocked_for(self, address: str, now: float) -> float:
        """Seconds until `address` may use even the right key; 0 when it may now."""
        ...

    async def failed(self, address: str, now: float) -> float:
        """Count one wrong key from `address`, atomically; the seconds it is refused for when
        this failure is past the limit (answer 429, not 401), else 0."""
        ...

    async def close(self) -> None: ...


@dataclass
class _Window:
    failures: int
    ends_at: float  # seconds since the epoch


WINDOWS = Codec[_Window](lambda w: [w.failures, w.ends_at], lambda v: _Window(int(v[0]), float(v[1])))


class LocalFailedAttempts:
    """Over `records`: this process's memory, or a file its sibling workers share (`shared`)."""

    SWEEP_EVERY = 1024  # new windows between two sweeps of the ended ones

    def __init__(self, max_failures: int, window_s: float, records: Records[_Window] | None = None) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._records: Records[_Window] = records if records is not None else MemoryRecords()
        self._new_windows = 0

    @classmethod
    def shared(cls, path: Path, max_failures: int, window_s: float) -> LocalFailedAttempts:
        return cls(max_failures, window_s, FileRecords(path, "failed_attempts", WINDOWS))

    async def blocked_for(self, address: str, now: float) -> float:
        window = self._records.get(address)
        if window is None or window.ends_at <= now or window.failures < self.max_failures:
            return 0.0
        return window.ends_at - now

    async def failed(self, address: str, now: float) -> float:
        def count(window: _Window | None) -> tuple[_Window, float]:
            if window is None or window.ends_at <= now:
                window = _Window(0, now + self.window_s)
                self._new_windows += 1
            window.failures += 1
            return window, (window.ends_at - now if window.failures > self.max_failures else 0.0)

        wait = self._records.update(address, count)
        if self._new_windows >= self.SWEEP_EVERY:  # every address that ever failed would stay
            self._new_windows = 0
            self._records.sweep(lambda w: w.ends_at <= now)
        return wait

    async def close(self) -> None:
        self._records.close()


class RedisFailedAttempts:
    """One counter per address, expiring with its window (every replica shares it)."""

    # INCR, the window's expiry set by the first failure only, and the TTL: one atomic step.
    _FAIL = """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
    return {n, redis.call('PTTL', KEYS[1])}
    """

    def __init__(self, client: Any, prefix: str, max_failures: int, window_s: float) -> None:
        self.client, self.prefix = client, prefix + "failed-attempts:"
        self.max_failures, self.window_ms = max_failures, max(1, math.ceil(window_s * 1000))
        self._fail = client.register_script(self._FAIL)

    async def blocked_for(self, address: str, now: float) -> float:  # noqa: ARG002 (Redis keeps time)
        key = self.prefix + address
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                failures, ttl_ms = await pipe.get(key).pttl(key).execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        if failures is None or int(failures) < self.max_failures or ttl_ms <= 0:
            return 0.0
        return float(ttl_ms) / 1000

    async def failed(self, address: str, now: float) -> float:  # noqa: ARG002
        try:
            failures, ttl_ms = await self._fail(keys=[self.prefix + address], args=[self.window_ms])
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return max(float(ttl_ms), 1.0) / 1000 if int(failures) > self.max_failures else 0.0

    async def close(self) -> None:
        await self.client.aclose()


def _unavailable(exc: Exception) -> ServiceUnavailable:
    log.warning("failed sign-ins cannot be counted: Redis did not answer (%s)", exc)
    return ServiceUnavailable(
        "The gateway cannot check sign-in attempts right now (its Redis store did not answer). "
        "Try again shortly."
    )


def build_failed_attempts(
    redis_url: str | None,
    *,
    max_failures: int,
    window_s: float,
    prefix: str = "imagegate:",
    shared_path: Path | None = None,
) -> FailedAttempts:
    """Where the rate limits live (limits/__init__.py build_rate_limiter), the same choice."""
    if redis_url is None:
        if shared_path is not None:
            return LocalFailedAttempts.shared(shared_path, max_failures, window_s)
        return LocalFailedAttempts(max_failures, window_s)
    from imagegate.redis_pool import connect

    return RedisFailedAttempts(connect(redis_url), prefix, max_failures, window_s)


def too_many(wait_s: float) -> RateLimited:
    """The 429 for an address that used up its failures (OpenAI's shape, Retry-After)."""
    err = RateLimited(
        f"Too many failed sign-in attempts from your address. Please try again in {go_duration(wait_s)}.",
        code="too_many_failed_attempts",
    )
    err.headers = {"retry-after": str(max(1, math.ceil(wait_s)))}
    return err
