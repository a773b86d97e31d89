"""The rate-limit port: what a request may do now, per key ("subject").

Four dimensions, each optional (None = unlimited; ``Limits()`` = the ``internal`` tier):

- requests per minute and images per minute are token buckets. A bucket holds at most one
  minute's allowance (capacity = the per-minute limit) and refills at limit/60 per second.
  So a key that was idle may burst up to ``rpm`` requests at once, then continues at the steady
  rate: from a full bucket, at most ``rpm + floor(w * rpm / 60)`` requests pass in any ``w``
  seconds (close to 2 x rpm in the first minute), and at most ``rpm`` per minute once it is empty.
  A request for n images takes n image tokens; one for more images than ``ipm`` never passes.
- requests per day is a fixed window that resets at 00:00 UTC.
- concurrency counts leases: a granted request holds one until ``release()``, or until the
  limiter's lease TTL passes (so a crashed process never holds a slot forever).

``acquire()`` checks every limit first and consumes only when all pass: a denied request costs
nothing. When several limits fail, ``Decision.limit`` names the first of: the images-per-minute
limit when the request can never pass (n > ipm), then concurrent requests (it resolves soonest),
requests per minute, images per minute, requests per day. ``Decision.retry_after_s`` is the
longest wait among the failed limits, so a retry after it is not refused by any of them again.

Time is never read here: the caller passes ``now`` (seconds since the epoch) from its clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

REQUESTS_PER_MINUTE = "requests per minute"
REQUESTS_PER_DAY = "requests per day"
IMAGES_PER_MINUTE = "images per minute"
CONCURRENT_REQUESTS = "concurrent requests"

DAY_S = 86_400
# Retry hint when all concurrency slots are taken: in-flight requests end at unknown times.
CONCURRENCY_RETRY_S = 1.0
# Retry hint when n > ipm: the request can never pass as it is; a full bucket is the best we can offer.
OVERSIZED_RETRY_S = 60.0
# A bucket admits a request up to this many seconds early. Epoch floats resolve ~0.2 us, so a
# client retrying exactly after retry_after_s could otherwise miss by a rounding error.
EARLY_S = 1e-3

# Bits of the "failed" mask shared by both backends (the Redis script returns it).
FAIL_CONCURRENCY = 1
FAIL_RPM = 2
FAIL_IPM = 4
FAIL_RPD = 8


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits; None means unlimited for that dimension."""

    rpm: int | None = None  # requests per minute (token bucket, capacity rpm, refill rpm/60 per s)
    rpd: int | None = None  # requests per UTC day (fixed window, resets at 00:00 UTC)
    ipm: int | None = None  # images per minute (token bucket like rpm; n images cost n)
    concurrency: int | None = None  # requests in flight at once

    def __post_init__(self) -> None:
        for name in ("rpm", "rpd", "ipm", "concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request, plus what the x-ratelimit-* headers report."""

    allowed: bool
    limit: str | None  # when denied: one of the four limit names above
    retry_after_s: float  # when denied: seconds until a retry can succeed (> 0); 0 when allowed
    lease: str | None  # concurrency lease to release (None when concurrency is unlimited or denied)
    # None when that dimension is unlimited; values after this request's consumption.
    limit_requests: int | None
    remaining_requests: int | None
    reset_requests_s: float | None  # seconds until the request bucket is full again
    limit_images: int | None
    remaining_images: int | None
    reset_images_s: float | None


class LimiterUnavailable(Exception):
    """The rate-limit backend cannot be reached (Redis down); the gateway fails closed."""


class RateLimiter(Protocol):
    async def acquire(self, subject: str, limits: Limits, *, images: int, now: float) -> Decision:
        """Atomically check every limit and, only if all pass, consume them all (no partial consumption).

        Raises LimiterUnavailable when the backend cannot be reached, ValueError when images < 1.
        """
        ...

    async def release(self, subject: str, lease: str) -> None:
        """End a concurrency lease (idempotent: unknown or expired leases are ignored)."""
        ...

    async def renew(self, subject: str, lease: str, now: float) -> None:
        """A lease's request is still running: it holds its slot a full lease TTL from `now`
        (an unknown or already expired lease is not revived)."""
        ...

    async def close(self) -> None:
        """Free connections; the limiter is unusable afterwards."""
        ...


def check_images(images: int) -> None:
    if images < 1:
        raise ValueError(f"images must be at least 1, not {images!r}")


def refill(tokens: float | None, ts: float | None, cap: int, now: float) -> tuple[float, float]:
    """A bucket's level at ``now``: (tokens, timestamp). A missing bucket is full.

    The Redis script repeats this arithmetic operation for operation, so both backends agree
    bit for bit. Time never runs backwards for a bucket (replicas' clocks may differ slightly).
    """
    if tokens is None or ts is None:
        return float(cap), now
    if now > ts:
        return min(float(cap), tokens + (now - ts) * cap / 60), now
    return min(float(cap), tokens), ts


def admits(tokens: float, cost: int, cap: int) -> bool:
    """Whether a bucket holding ``tokens`` can pay ``cost`` (EARLY_S of refill is forgiven)."""
    return tokens + cap / 60 * EARLY_S >= cost


def utc_day(now: float) -> int:
    """Days since the epoch, UTC: the rpd window's number."""
    return math.floor(now / DAY_S)


def until_midnight(now: float) -> float:
    """Seconds until the next 00:00 UTC (> 0)."""
    return (utc_day(now) + 1) * DAY_S - now


def decide(
    limits: Limits,
    *,
    images: int,
    now: float,
    failed: int,
    request_tokens: float | None,
    image_tokens: float | None,
    lease: str | None,
) -> Decision:
    """Build the Decision from a backend's raw outcome.

    ``failed`` is the FAIL_* mask; the token counts are each bucket's level after this request's
    consumption (or as they stand, when it was denied).
    """
    limit_requests = remaining_requests = limit_images = remaining_images = None
    reset_requests_s = reset_images_s = None
    if limits.rpm is not None and request_tokens is not None:
        limit_requests = limits.rpm
        remaining_requests = _remaining(request_tokens, limits.rpm)
        reset_requests_s = _until_full(request_tokens, limits.rpm)
    if limits.ipm is not None and image_tokens is not None:
        limit_images = limits.ipm
        remaining_images = _remaining(image_tokens, limits.ipm)
        reset_images_s = _until_full(image_tokens, limits.ipm)
    if not failed:
        return Decision(
            True,
            None,
            0.0,
            lease,
            limit_requests,
            remaining_requests,
            reset_requests_s,
            limit_images,
            remaining_images,
            reset_images_s,
        )
    waits: dict[str, float] = {}
    oversized = limits.ipm is not None and images > limits.ipm
    if failed & FAIL_IPM and oversized:
        waits[IMAGES_PER_MINUTE] = OVERSIZED_RETRY_S
    if failed & FAIL_CONCURRENCY:
        waits[CONCURRENT_REQUESTS] = CONCURRENCY_RETRY_S
    if failed & FAIL_RPM and limits.rpm is not None and request_tokens is not None:
        waits[REQUESTS_PER_MINUTE] = _until_tokens(request_tokens, 1, limits.rpm)
    if failed & FAIL_IPM and not oversized and limits.ipm is not None and image_tokens is not None:
        waits[IMAGES_PER_MINUTE] = _until_tokens(image_tokens, images, limits.ipm)
    if failed & FAIL_RPD:
        waits[REQUESTS_PER_DAY] = until_midnight(now)
    # dicts keep insertion order, which is the documented reporting order.
    limit = next(iter(waits))
    return Decision(
        False,
        limit,
        max(waits.values()),
        None,
        limit_requests,
        remaining_requests,
        reset_requests_s,
        limit_images,
        remaining_images,
        reset_images_s,
    )


def _remaining(tokens: float, cap: int) -> int:
    return max(0, min(cap, math.floor(tokens + cap / 60 * EARLY_S)))


def _until_full(tokens: float, cap: int) -> float:
    return max(0.0, (cap - tokens) * 60 / cap)


def _until_tokens(tokens: float, cost: int, cap: int) -> float:
    # Denied means the shortfall exceeds EARLY_S of refill, so this is > 0.
    return max(EARLY_S, (cost - tokens) * 60 / cap)
