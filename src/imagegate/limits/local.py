"""The rate limiter without Redis: exact within one process, or across the processes of one
machine that share its records' file (`imagegate serve --workers N`; imagegate.records).

State is one small record per subject ever seen, kept for the life of the server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from imagegate.records import Codec, FileRecords, MemoryRecords, Records


@dataclass
class _Subject:
    requests: tuple[float, float] | None = None  # (tokens, timestamp)
    images: tuple[float, float] | None = None
    day: int = 0
    day_count: int = 0
    leases: dict[str, float] = field(default_factory=dict)  # lease -> expiry (seconds since epoch)


def _load(value: dict[str, Any]) -> _Subject:
    requests, images = value["requests"], value["images"]
    return _Subject(
        tuple(requests) if requests else None,
        tuple(images) if images else None,
        value["day"],
        value["day_count"],
        value["leases"],
    )


SUBJECTS = Codec[_Subject](lambda s: s.__dict__, _load)


class LocalRateLimiter:
    """A RateLimiter over `records`: this process's memory (the default) or a shared file
    (`shared(path)`). Each call is one atomic update of its subject's record, so it is exact
    under any number of coroutines, threads and (with the file) processes."""

    def __init__(self, lease_ttl_s: float = 900, records: Records[_Subject] | None = None) -> None:
        self.lease_ttl_s = lease_ttl_s
        self._records: Records[_Subject] = records if records is not None else MemoryRecords()

    @classmethod
    def shared(cls, path: Path, lease_ttl_s: float = 900) -> LocalRateLimiter:
        """The limiter of every process that opens `path` (a SQLite file)."""
        return cls(lease_ttl_s, FileRecords(path, "rate_limits", SUBJECTS))

    async def acquire(self, subject: str, limits: Limits, *, images: int, now: float) -> Decision:
        check_images(images)

        def take(state: _Subject | None) -> tuple[_Subject, tuple[int, Any, Any, str | None]]:
            state = state or _Subject()
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
                if limits.concurrency is not None:
                    lease = uuid.uuid4().hex
                    state.leases[lease] = now + self.lease_ttl_s
            return state, (failed, requests, images_level, lease)

        failed, requests, images_level, lease = self._records.update(subject, take)
        return decide(
            limits,
            images=images,
            now=now,
            failed=failed,
            request_tokens=requests[0] if requests is not None else None,
            image_tokens=images_level[0] if images_level is not None else None,
            lease=lease,
        )

    async def release(self, subject: str, lease: str) -> None:
        def end(state: _Subject | None) -> tuple[_Subject | None, None]:
            if state is not None:
                state.leases.pop(lease, None)
            return state, None

        self._records.update(subject, end)

    async def renew(self, subject: str, lease: str, now: float) -> None:
        def extend(state: _Subject | None) -> tuple[_Subject | None, None]:
            if state is not None and state.leases.get(lease, now) > now:
                state.leases[lease] = now + self.lease_ttl_s
            return state, None

        self._records.update(subject, extend)

    async def close(self) -> None:
        self._records.close()


def _level(bucket: tuple[float, float] | None, cap: int | None, now: float) -> tuple[float, float] | None:
    """A bucket's (tokens, timestamp) at now; None when that dimension is unlimited."""
    if cap is None:
        return None
    if bucket is None:
        return refill(None, None, cap, now)
    return refill(bucket[0], bucket[1], cap, now)
