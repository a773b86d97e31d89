"""Stage: admit the request within its key's limits, or 429 with Retry-After.

Contract: `limits_for(key, tiers)` merges the tier's numbers with the key's overrides;
`admit(limiter, key, limits, images, now, fail_open)` returns the limiter's Decision (whose
numbers become the x-ratelimit-* headers) or raises RateLimited (429 rate_limit_exceeded,
`Retry-After` in whole seconds). If the limit store is unreachable the request fails closed
with 503 ServiceUnavailable, unless the operator chose fail-open; it never silently falls
back to per-process counters.
"""

from __future__ import annotations

import math

from imagegate.config import Tier
from imagegate.errors import RateLimited, ServiceUnavailable
from imagegate.limits import go_duration
from imagegate.limits.base import Decision, LimiterUnavailable, Limits, RateLimiter
from imagegate.storage.keys import ApiKey

UNLIMITED = Decision(
    allowed=True,
    limit=None,
    retry_after_s=0.0,
    lease=None,
    limit_requests=None,
    remaining_requests=None,
    reset_requests_s=None,
    limit_images=None,
    remaining_images=None,
    reset_images_s=None,
)


def tier_of(key: ApiKey, tiers: dict[str, Tier]) -> Tier:
    # A key whose tier was removed from the configuration falls back to the strictest default.
    return tiers.get(key.tier) or tiers.get("free") or Tier()


def limits_for(key: ApiKey, tiers: dict[str, Tier]) -> Limits:
    tier = tier_of(key, tiers)

    def pick(override: int | None, default: int | None) -> int | None:
        return override if override is not None else default

    return Limits(
        rpm=pick(key.rpm, tier.rpm),
        rpd=pick(key.rpd, tier.rpd),
        ipm=pick(key.ipm, tier.ipm),
        concurrency=pick(key.concurrency, tier.concurrency),
    )


async def admit(
    limiter: RateLimiter, key: ApiKey, limits: Limits, *, images: int, now: float, fail_open: bool
) -> Decision:
    if limits == Limits():
        return UNLIMITED  # nothing to check (the internal tier): no round trip to the store
    try:
        decision = await limiter.acquire(str(key.id), limits, images=images, now=now)
    except LimiterUnavailable as exc:
        if fail_open:
            return UNLIMITED
        raise ServiceUnavailable(
            "The rate-limit store is unreachable, so this gateway is refusing requests "
            "(it fails closed). Try again shortly."
        ) from exc
    if decision.allowed:
        return decision
    wait = max(1, math.ceil(decision.retry_after_s))
    err = RateLimited(
        f"Rate limit reached for {decision.limit} on key {key.prefix}…: "
        f"Limit {_limit_value(decision, limits)}. Please try again in {go_duration(decision.retry_after_s)}."
    )
    err.headers = {"retry-after": str(wait), **headers(decision)}
    raise err


def _limit_value(decision: Decision, limits: Limits) -> int | None:
    return {
        "requests per minute": limits.rpm,
        "requests per day": limits.rpd,
        "images per minute": limits.ipm,
        "concurrent requests": limits.concurrency,
    }.get(decision.limit or "")


def headers(decision: Decision) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers (Go-style durations), plus the same for images."""
    out: dict[str, str] = {}
    for kind in ("requests", "images"):
        limit = getattr(decision, f"limit_{kind}")
        if limit is None:
            continue
        out[f"x-ratelimit-limit-{kind}"] = str(limit)
        out[f"x-ratelimit-remaining-{kind}"] = str(getattr(decision, f"remaining_{kind}"))
        out[f"x-ratelimit-reset-{kind}"] = go_duration(getattr(decision, f"reset_{kind}_s") or 0.0)
    return out
