"""The in-process rate limiter: exact, per process (the default when no Redis URL is set).

State is one small record per subject ever seen, kept for the life of the process.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

from imagegate.limits.base import (
    FAIL_CONCURRENCY,
    FAIL_IPM,
    FAIL_RPD,
    FAIL_RPM,
    Decision,
    Limits,
    admits,
    check_images,
    decide,
    refill,
    utc_day,
)


@dataclass
class _Subject:
    requests: tuple[float, float] | None = None  # (tokens, timestamp)
    images: tuple[float, float] | None = None
    day: int = 0
    day_count: int = 0
    leases: dict[str, float] = field(default_factory=dict)  # lease -> expiry (seconds since epoch)


class MemoryRateLimiter:
    """A RateLimiter in this process's memory.

    The critical section never awaits, so a plain lock makes it exact under any number of
    coroutines (and threads, and event loops).
    """

    def __init__(self, lease_ttl_s: float = 900) -> None:
        self.lease_ttl_s = lease_ttl_s
        self._subjects: dict[str, _Subject] = {}
        self._lock = threading.Lock()

    async def acquire(self, subject: str, limits: Limits, *, images: int, now: float) -> Decision:
        check_images(images)
        with self._lock:
            state = self._subjects.setdefault(subject, _Subject())
            requests = _level(state.requests, limits.rpm, now)
            images_level = _level(state.images, limits.ipm, now)
            day = utc_day(now)
            day_count = state.day_count if state.day == day else 0
            failed = 0
            if limits.concurrency is not None:
                state.leases = {k: exp for k, exp in state.leases.items() if exp > now}
                if len(state.leases) >= limits.concurrency:
                    failed |= FAIL_CONCURRENCY
            if requests is not None and not admits(requests[0], 1, limits.rpm or 0):
                failed |= FAIL_RPM
            if images_level is not None and not admits(images_level[0], images, limits.ipm or 0):
                failed |= FAIL_IPM
            if limits.rpd is not None and day_count >= limits.rpd:
                failed |= FAIL_RPD
            lease = None
            if not failed:
                # Consume everything at once: one request, n images, a day slot, a lease.
                if requests is not None:
                    requests = state.requests = (requests[0] - 1, requests[1])
                if images_level is not None:
                    images_level = state.images = (images_level[0] - images, images_level[1])
                if limits.rpd is not None:
                    state.day, state.day_count = day, day_count + 1
                lease = self._lease(state, limits, now)
        return decide(
            limits,
            images=images,
            now=now,
            failed=failed,
            request_tokens=requests[0] if requests is not None else None,
            image_tokens=images_level[0] if images_level is not None else None,
            lease=lease,
        )

    def _lease(self, state: _Subject, limits: Limits, now: float) -> str | None:
        if limits.concurrency is None:
            return None
        lease = uuid.uuid4().hex
        state.leases[lease] = now + self.lease_ttl_s
        return lease

    async def release(self, subject: str, lease: str) -> None:
        with self._lock:
            state = self._subjects.get(subject)
            if state is not None:
                state.leases.pop(lease, None)

    async def renew(self, subject: str, lease: str, now: float) -> None:
        with self._lock:
            state = self._subjects.get(subject)
            if state is not None and state.leases.get(lease, now) > now:
                state.leases[lease] = now + self.lease_ttl_s

    async def close(self) -> None:
        return None


def _level(bucket: tuple[float, float] | None, cap: int | None, now: float) -> tuple[float, float] | None:
    """A bucket's (tokens, timestamp) at now; None when that dimension is unlimited."""
    if cap is None:
        return None
    if bucket is None:
        return refill(None, None, cap, now)
    return refill(bucket[0], bucket[1], cap, now)
