"""Rate limits: the RateLimiter port, its in-process and Redis backends, and header helpers.

The token buckets (requests and images per minute) hold at most one minute's allowance: an idle
key may burst up to its per-minute limit at once, then goes on at the steady rate (limit/60 per
second). See ``imagegate.limits.base`` for the full contract.
"""

from __future__ import annotations

from pathlib import Path

from imagegate.limits.base import (
    CONCURRENT_REQUESTS,
    IMAGES_PER_MINUTE,
    REQUESTS_PER_DAY,
    REQUESTS_PER_MINUTE,
    Decision,
    LimiterUnavailable,
    Limits,
    RateLimiter,
)
from imagegate.limits.duration import go_duration
from imagegate.limits.local import LocalRateLimiter

__all__ = [
    "CONCURRENT_REQUESTS",
    "IMAGES_PER_MINUTE",
    "REQUESTS_PER_DAY",
    "REQUESTS_PER_MINUTE",
    "Decision",
    "LimiterUnavailable",
    "Limits",
    "LocalRateLimiter",
    "RateLimiter",
    "build_rate_limiter",
    "go_duration",
]


def build_rate_limiter(
    redis_url: str | None,
    *,
    prefix: str = "imagegate:",
    lease_ttl_s: float = 900,
    socket_timeout_s: float = 2.0,
    shared_path: Path | None = None,
) -> RateLimiter:
    """The Redis limiter when a URL is given; else the one of every process opening `shared_path`
    (`serve --workers N`), else this process's own (prefix and timeout unused)."""
    if redis_url is None:
        if shared_path is not None:
            return LocalRateLimiter.shared(shared_path, lease_ttl_s=lease_ttl_s)
        return LocalRateLimiter(lease_ttl_s=lease_ttl_s)
    # Imported here: only a Redis deployment needs the redis package.
    from imagegate.limits.redis import RedisRateLimiter

    return RedisRateLimiter(
        redis_url, prefix=prefix, lease_ttl_s=lease_ttl_s, socket_timeout_s=socket_timeout_s
    )
