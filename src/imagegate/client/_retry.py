"""When to retry and how long to wait: openai-python's rules, as pure functions.

Retried: connection errors, timeouts and HTTP 408, 409, 429 and >= 500, except a 429 whose
code is `insufficient_quota` (more attempts cannot help). A response header
`x-should-retry: true|false` overrides the status rule either way.

The wait before retry n (0, 1, 2 ...) is the server's `retry-after-ms` or `Retry-After`
(seconds or an HTTP date); otherwise exponential backoff with jitter,
min(0.5 * 2**n, 8) * (1 - 0.25 * random()), i.e. 0.375-0.5 s, 0.75-1 s, 1.5-2 s ... A server
asking for more than `max_retry_after` s (a per-day limit) is not retried: `send` raises at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from imagegate.client._errors import INSUFFICIENT_QUOTA, retry_after

RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and the bounds of the waits between attempts."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0


def should_retry(status: int, headers: Mapping[str, str], code: str | None = None) -> bool:
    """Whether an HTTP error answer is worth another attempt."""
    override = headers.get("x-should-retry", "").strip().lower()
    if override == "true":
        return True
    if override == "false":
        return False
    if status == 429 and code == INSUFFICIENT_QUOTA:
        return False
    return status in RETRY_STATUSES or status >= 500


def backoff_delay(retry: int, policy: RetryPolicy, random: Callable[[], float]) -> float:
    """Jittered exponential backoff for retry number `retry` (from 0)."""
    base = min(policy.initial_delay * 2.0**retry, policy.max_delay)
    return base * (1.0 - 0.25 * random())


def retry_delay(
    retry: int,
    headers: Mapping[str, str],
    policy: RetryPolicy,
    *,
    now: float,
    random: Callable[[], float],
) -> float:
    """Seconds to wait before retry number `retry`: the server's word, capped, else backoff."""
    asked = retry_after(headers, now)
    if asked is not None and asked > 0:
        return min(asked, policy.max_retry_after)
    return backoff_delay(retry, policy, random)
