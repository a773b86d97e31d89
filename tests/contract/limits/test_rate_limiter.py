"""One contract for every RateLimiter: in-process and Redis, driven by a manual `now`."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import multiprocessing
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from imagegate.limits import (
    CONCURRENT_REQUESTS,
    IMAGES_PER_MINUTE,
    REQUESTS_PER_DAY,
    REQUESTS_PER_MINUTE,
    Decision,
    LimiterUnavailable,
    Limits,
    LocalRateLimiter,
    RateLimiter,
    build_rate_limiter,
)
from imagegate.limits.redis import RedisRateLimiter
from tests.contract.conftest import FileStore, RedisStore, concurrently, pttls

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC: far from midnight
MIDNIGHT = math.ceil(T0 / 86_400) * 86_400.0

Factory = Callable[..., RateLimiter]


@pytest.fixture
def new_limiter(store: RedisStore | FileStore | None) -> Factory:
    """Makes limiters of one backend; file ones share a file, Redis ones a prefix, unique to the test."""
    if store is None:
        return LocalRateLimiter
    if isinstance(store, FileStore):
        return lambda **kw: LocalRateLimiter.shared(store.path, **kw)
    return lambda **kw: RedisRateLimiter(store.url, prefix=store.prefix, **kw)


@pytest.fixture
async def limiter(new_limiter: Factory, anyio_backend: str) -> AsyncIterator[RateLimiter]:
    lim = new_limiter()
    yield lim
    await lim.close()


async def burst(
    lim: RateLimiter, limits: Limits, count: int, *, now: float = T0, images: int = 1, subject: str = "k"
) -> list[Decision]:
    return [await lim.acquire(subject, limits, images=images, now=now) for _ in range(count)]


# -- requests per minute ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_burst_of_exactly_rpm_then_denied(limiter: RateLimiter) -> None:
    limits = Limits(rpm=20)
    granted = await burst(limiter, limits, 20)
    assert all(d.allowed for d in granted)
    assert [d.remaining_requests for d in granted] == list(range(19, -1, -1))
    assert [d.reset_requests_s for d in granted] == pytest.approx([3.0 * k for k in range(1, 21)])
    denied = await limiter.acquire("k", limits, images=1, now=T0)
    assert not denied.allowed
    assert denied.limit == REQUESTS_PER_MINUTE
    assert denied.retry_after_s == pytest.approx(3.0)  # one token at 20/60 per second
    assert denied.lease is None
    assert (denied.limit_requests, denied.remaining_requests) == (20, 0)
    assert denied.reset_requests_s == pytest.approx(60.0)


@pytest.mark.parametrize("rpm", [20, 7, 60, 1000])
@pytest.mark.anyio
async def test_refill_after_one_interval_admits_exactly_one(limiter: RateLimiter, rpm: int) -> None:
    limits = Limits(rpm=rpm)
    await burst(limiter, limits, rpm)
    now = T0
    for _ in range(3):
        denied = await limiter.acquire("k", limits, images=1, now=now)
        assert not denied.allowed
        now += denied.retry_after_s  # a client that obeys retry-after is never refused again
        assert denied.retry_after_s == pytest.approx(60 / rpm, rel=1e-3)
        assert (await limiter.acquire("k", limits, images=1, now=now)).allowed
    assert not (await limiter.acquire("k", limits, images=1, now=now)).allowed


@pytest.mark.anyio
async def test_rpm_never_exceeds_the_bucket_in_any_window(limiter: RateLimiter) -> None:
    rpm, step = 20, 0.25
    limits = Limits(rpm=rpm)
    times = [T0 + i * step for i in range(int(150 / step))]
    decisions = [await limiter.acquire("k", limits, images=1, now=t) for t in times]
    admitted = [t for t, d in zip(times, decisions, strict=True) if d.allowed]
    drained = next(t for t, d in zip(times, decisions, strict=True) if not d.allowed)

    def in_window(start: float, width: float = 60.0) -> int:
        return sum(start <= t < start + width for t in admitted)

    # From a full bucket: the burst of rpm, then one every 60/rpm s (the documented 2*rpm - 1).
    assert in_window(T0) == 2 * rpm - 1
    # Any window of w seconds: at most rpm + floor(w * rpm / 60); once the bucket ran dry, rpm a minute.
    for start in times:
        for width in (1.0, 10.0, 30.0, 60.0):
            assert in_window(start, width) <= rpm + math.floor(width * rpm / 60)
        if start >= drained:
            assert in_window(start) <= rpm
    assert in_window(drained) == rpm


# -- requests per day ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rpd_resets_at_utc_midnight(limiter: RateLimiter) -> None:
    limits = Limits(rpd=3)
    evening = MIDNIGHT - 10
    assert all(d.allowed for d in await burst(limiter, limits, 3, now=evening - 3600))
    denied = await limiter.acquire("k", limits, images=1, now=evening)
    assert (denied.allowed, denied.limit) == (False, REQUESTS_PER_DAY)
    assert denied.retry_after_s == pytest.approx(10.0)
    assert denied.limit_requests is None and denied.remaining_requests is None  # rpm is unlimited
    assert not (await limiter.acquire("k", limits, images=1, now=MIDNIGHT - 0.001)).allowed
    assert all(d.allowed for d in await burst(limiter, limits, 3, now=MIDNIGHT))
    assert not (await limiter.acquire("k", limits, images=1, now=MIDNIGHT + 86_399)).allowed


# -- images per minute -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ipm_counts_images(limiter: RateLimiter) -> None:
    limits = Limits(ipm=20)
    first, second, third = await burst(limiter, limits, 3, images=10)
    assert first.allowed and second.allowed
    assert (first.limit_images, first.remaining_images, second.remaining_images) == (20, 10, 0)
    assert first.reset_images_s == pytest.approx(30.0)
    assert (third.allowed, third.limit) == (False, IMAGES_PER_MINUTE)
    assert third.retry_after_s == pytest.approx(30.0)  # ten images at 20/60 per second
    assert (await limiter.acquire("k", limits, images=10, now=T0 + 30)).allowed


@pytest.mark.anyio
async def test_more_images_than_ipm_never_pass(limiter: RateLimiter) -> None:
    limits = Limits(ipm=5, concurrency=1)
    for now in (T0, T0 + 3600):
        decision = await limiter.acquire("k", limits, images=6, now=now)
        assert (decision.allowed, decision.limit) == (False, IMAGES_PER_MINUTE)
        assert decision.retry_after_s > 0
        assert decision.remaining_images == 5
    assert (await limiter.acquire("k", limits, images=5, now=T0 + 3600)).allowed


# -- no partial consumption ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_denied_request_consumes_nothing(limiter: RateLimiter) -> None:
    limits = Limits(rpm=10, ipm=10, concurrency=3)
    assert all(d.allowed for d in await burst(limiter, limits, 2, images=4))
    denied = await limiter.acquire("k", limits, images=4, now=T0)
    assert (denied.allowed, denied.limit) == (False, IMAGES_PER_MINUTE)
    assert denied.remaining_requests == 8  # no request token was taken...
    third = await limiter.acquire("k", limits, images=2, now=T0)
    assert third.allowed  # ...and no concurrency slot
    assert (third.remaining_requests, third.remaining_images) == (7, 0)


@pytest.mark.anyio
async def test_a_request_denied_per_minute_does_not_count_for_the_day(limiter: RateLimiter) -> None:
    limits = Limits(rpm=1, rpd=2)
    assert (await limiter.acquire("k", limits, images=1, now=T0)).allowed
    assert not (await limiter.acquire("k", limits, images=1, now=T0 + 1)).allowed
    assert (await limiter.acquire("k", limits, images=1, now=T0 + 60)).allowed
    denied = await limiter.acquire("k", limits, images=1, now=T0 + 120)
    assert denied.limit == REQUESTS_PER_DAY


# -- concurrency -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrency_slots_and_release(limiter: RateLimiter) -> None:
    limits = Limits(concurrency=5)
    granted = await burst(limiter, limits, 5)
    leases = [d.lease for d in granted]
    assert all(d.allowed for d in granted) and len(set(leases)) == 5 and None not in leases
    denied = await limiter.acquire("k", limits, images=1, now=T0)
    assert (denied.allowed, denied.limit, denied.lease) == (False, CONCURRENT_REQUESTS, None)
    assert denied.retry_after_s == 1.0
    assert leases[0] is not None
    await limiter.release("k", leases[0])
    await limiter.release("k", leases[0])  # idempotent: frees one slot, not two
    await limiter.release("k", "no-such-lease")
    await limiter.release("nobody", "no-such-lease")
    assert (await limiter.acquire("k", limits, images=1, now=T0)).allowed
    assert not (await limiter.acquire("k", limits, images=1, now=T0)).allowed


@pytest.mark.anyio
async def test_an_expired_lease_frees_its_slot(new_limiter: Factory, anyio_backend: str) -> None:
    lim = new_limiter(lease_ttl_s=900)
    try:
        limits = Limits(concurrency=2)
        assert all(d.allowed for d in await burst(lim, limits, 2))
        assert not (await lim.acquire("k", limits, images=1, now=T0 + 899.9)).allowed
        late = await burst(lim, limits, 3, now=T0 + 900)  # both leases expired at T0 + 900
        assert [d.allowed for d in late] == [True, True, False]
    finally:
        await lim.close()


@pytest.mark.anyio
async def test_a_renewed_lease_keeps_its_slot_past_the_ttl(new_limiter: Factory, anyio_backend: str) -> None:
    """A request still running renews its lease: the slot stays held a full TTL after the renewal,
    while a released or expired lease is never revived by a late renewal."""
    lim = new_limiter(lease_ttl_s=900)
    try:
        limits = Limits(concurrency=2)
        running, released = (d.lease for d in await burst(lim, limits, 2))
        assert running is not None and released is not None
        await lim.renew("k", running, T0 + 600)  # holds until T0 + 1500
        await lim.release("k", released)
        await lim.renew("k", released, T0 + 600)  # released: stays released
        await lim.renew("k", "no-such-lease", T0 + 600)
        after = await burst(lim, limits, 2, now=T0 + 1200)
        assert [d.allowed for d in after] == [True, False]  # the renewed lease still holds one slot
        await lim.renew("k", running, T0 + 1600)  # expired at T0 + 1500: not revived
        assert (await lim.acquire("k", limits, images=1, now=T0 + 1600)).allowed
    finally:
        await lim.close()


@pytest.mark.anyio
async def test_subjects_are_independent(limiter: RateLimiter) -> None:
    limits = Limits(rpm=1, concurrency=1)
    assert (await limiter.acquire("a", limits, images=1, now=T0)).allowed
    assert (await limiter.acquire("b", limits, images=1, now=T0)).allowed
    assert not (await limiter.acquire("a", limits, images=1, now=T0)).allowed


# -- which limit is reported -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrency_is_reported_first_and_retry_covers_every_failed_limit(
    limiter: RateLimiter,
) -> None:
    limits = Limits(rpm=1, concurrency=1)
    assert (await limiter.acquire("k", limits, images=1, now=T0)).allowed
    denied = await limiter.acquire("k", limits, images=1, now=T0)
    assert denied.limit == CONCURRENT_REQUESTS
    assert denied.retry_after_s == pytest.approx(60.0)  # the rpm bucket needs a minute


@pytest.mark.anyio
async def test_rpm_is_reported_before_ipm_and_rpd(limiter: RateLimiter) -> None:
    limits = Limits(rpm=1, ipm=1, rpd=1)
    assert (await limiter.acquire("k", limits, images=1, now=MIDNIGHT - 100)).allowed
    denied = await limiter.acquire("k", limits, images=1, now=MIDNIGHT - 100)
    assert denied.limit == REQUESTS_PER_MINUTE
    assert denied.retry_after_s == pytest.approx(100.0)  # the day limit lifts last
    denied = await limiter.acquire("k", Limits(ipm=1, rpd=1), images=1, now=MIDNIGHT - 100)
    assert denied.limit == IMAGES_PER_MINUTE


@pytest.mark.anyio
async def test_oversized_request_is_reported_as_ipm_even_when_slots_are_full(limiter: RateLimiter) -> None:
    limits = Limits(ipm=5, concurrency=1)
    assert (await limiter.acquire("k", limits, images=1, now=T0)).allowed
    denied = await limiter.acquire("k", limits, images=6, now=T0)
    assert (denied.limit, denied.retry_after_s) == (IMAGES_PER_MINUTE, 60.0)


# -- header values ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_header_values_after_each_call(limiter: RateLimiter) -> None:
    limits = Limits(rpm=60, ipm=30)
    first = await limiter.acquire("k", limits, images=3, now=T0)
    assert (first.limit_requests, first.remaining_requests, first.limit_images, first.remaining_images) == (
        60,
        59,
        30,
        27,
    )
    assert (first.reset_requests_s, first.reset_images_s) == pytest.approx((1.0, 6.0))
    second = await limiter.acquire("k", limits, images=3, now=T0 + 0.5)
    # requests: 59 + 0.5 refilled - 1 = 58.5; images: 27 + 0.25 - 3 = 24.25
    assert (second.remaining_requests, second.remaining_images) == (58, 24)
    assert (second.reset_requests_s, second.reset_images_s) == pytest.approx((1.5, 11.5))
    assert (second.retry_after_s, second.limit) == (0.0, None)
    idle = await limiter.acquire("k", limits, images=1, now=T0 + 600)
    assert (idle.remaining_requests, idle.remaining_images) == (59, 29)


@pytest.mark.anyio
async def test_unlimited_dimensions_report_none(limiter: RateLimiter) -> None:
    decision = await limiter.acquire("k", Limits(rpd=5, concurrency=2), images=1, now=T0)
    assert decision.allowed and decision.lease is not None
    assert (decision.limit_requests, decision.remaining_requests, decision.reset_requests_s) == (None,) * 3
    assert (decision.limit_images, decision.remaining_images, decision.reset_images_s) == (None,) * 3


@pytest.mark.anyio
async def test_no_limits_allow_everything(limiter: RateLimiter) -> None:
    for decision in await burst(limiter, Limits(), 500, images=10):
        assert decision == Decision(True, None, 0.0, None, None, None, None, None, None, None)


@pytest.mark.anyio
async def test_invalid_arguments(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="rpm"):
        Limits(rpm=0)
    with pytest.raises(ValueError, match="concurrency"):
        Limits(concurrency=-1)
    with pytest.raises(ValueError, match="images"):
        await limiter.acquire("k", Limits(rpm=5), images=0, now=T0)


# -- real concurrency ------------------------------------------------------------------------------


async def hammer(limiters: list[RateLimiter], limits: Limits, calls: int) -> list[Decision]:
    return await concurrently(
        calls, lambda i: limiters[i % len(limiters)].acquire("k", limits, images=1, now=T0 + i * 1e-4)
    )


@pytest.mark.anyio
async def test_200_concurrent_acquires_admit_exactly_rpm(limiter: RateLimiter) -> None:
    results = await hammer([limiter], Limits(rpm=50), 200)
    assert sum(d.allowed for d in results) == 50
    assert {d.limit for d in results if not d.allowed} == {REQUESTS_PER_MINUTE}


# -- Shared by processes: the file and Redis ------------------------------------------------------


@pytest.fixture(params=["file", "redis"])
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[list[RateLimiter]]:
    """Two limiters with their own connections, as two gateway processes (workers or replicas) have."""
    if request.param == "file":
        pair: list[RateLimiter] = [LocalRateLimiter.shared(tmp_path / "limits.sqlite") for _ in range(2)]
    else:
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        pair = [RedisRateLimiter(url, prefix=prefix) for _ in range(2)]
    yield pair
    for lim in pair:
        await lim.close()


@pytest.mark.anyio
async def test_replicas_share_exact_counts(replicas: list[RateLimiter]) -> None:
    a, b = replicas
    limits = Limits(rpm=10, rpd=12)
    decisions = [await (a if i % 2 else b).acquire("k", limits, images=1, now=T0) for i in range(20)]
    assert sum(d.allowed for d in decisions) == 10
    later = [await (a if i % 2 else b).acquire("k", limits, images=1, now=T0 + 60) for i in range(5)]
    assert [d.allowed for d in later] == [True, True, False, False, False]
    assert later[-1].limit == REQUESTS_PER_DAY


@pytest.mark.anyio
async def test_replicas_share_concurrency_slots(replicas: list[RateLimiter]) -> None:
    a, b = replicas
    limits = Limits(concurrency=2)
    held = [await a.acquire("k", limits, images=1, now=T0), await b.acquire("k", limits, images=1, now=T0)]
    assert all(d.allowed for d in held)
    assert not (await a.acquire("k", limits, images=1, now=T0)).allowed
    assert held[0].lease is not None
    await b.release("k", held[0].lease)  # a lease taken on one replica ends on another
    assert (await a.acquire("k", limits, images=1, now=T0)).allowed


@pytest.mark.anyio
async def test_200_concurrent_acquires_across_replicas(replicas: list[RateLimiter]) -> None:
    results = await hammer(replicas, Limits(rpm=50, concurrency=1000), 200)
    assert sum(d.allowed for d in results) == 50


# -- Redis only ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_backends_agree_bit_for_bit(redis_url: str, redis_prefix: str, anyio_backend: str) -> None:
    memory, shared = (
        LocalRateLimiter(lease_ttl_s=30),
        RedisRateLimiter(redis_url, prefix=redis_prefix, lease_ttl_s=30),
    )
    rng = random.Random(3)
    limits = Limits(rpm=7, rpd=50, ipm=20, concurrency=4)
    now = MIDNIGHT - 600
    leases: list[tuple[str | None, str | None]] = []
    seen: set[str | None] = set()
    try:
        for _ in range(400):
            now += rng.choice([0.0, 0.001, 0.37, 1.0, 60 / 7, 13.0])
            if leases and rng.random() < 0.45:
                mem_lease, redis_lease = leases.pop(rng.randrange(len(leases)))
                assert mem_lease is not None and redis_lease is not None
                await memory.release("k", mem_lease)
                await shared.release("k", redis_lease)
                continue
            images = rng.randint(1, 5)
            mine = await memory.acquire("k", limits, images=images, now=now)
            theirs = await shared.acquire("k", limits, images=images, now=now)
            assert dataclasses.replace(mine, lease=None) == dataclasses.replace(theirs, lease=None)
            assert (mine.lease is None) == (theirs.lease is None)
            seen.add(mine.limit)
            if mine.allowed:
                leases.append((mine.lease, theirs.lease))
        # The walk crossed midnight and hit every limit (leases also expired along the way).
        assert now > MIDNIGHT
        assert seen == {None, CONCURRENT_REQUESTS, REQUESTS_PER_MINUTE, IMAGES_PER_MINUTE, REQUESTS_PER_DAY}
    finally:
        await shared.close()


@pytest.mark.anyio
async def test_keys_expire(redis_url: str, redis_prefix: str, anyio_backend: str) -> None:
    lim = RedisRateLimiter(redis_url, prefix=redis_prefix, lease_ttl_s=900)
    try:
        assert (await lim.acquire("k", Limits(rpm=5, rpd=5, ipm=5, concurrency=5), images=1, now=T0)).allowed
    finally:
        await lim.close()
    ttls = {
        key.rsplit(":", 1)[-1] if ":rpd:" not in key else "rpd": ttl
        for key, ttl in pttls(redis_url, redis_prefix).items()
    }
    assert set(ttls) == {"rpm", "ipm", "rpd", "leases"}
    assert 0 < ttls["rpm"] <= 120_000 and 0 < ttls["ipm"] <= 120_000
    assert 86_400_000 < ttls["rpd"] <= 2 * 86_400_000
    assert 900_000 < ttls["leases"] <= 960_000


@pytest.mark.anyio
async def test_unreachable_redis_fails_fast(anyio_backend: str) -> None:
    lim = RedisRateLimiter("redis://:hunter2@127.0.0.1:1/0")
    try:
        start = time.monotonic()
        with pytest.raises(LimiterUnavailable) as caught:
            await lim.acquire("k", Limits(rpm=5), images=1, now=T0)
        assert time.monotonic() - start < 3
        assert str(caught.value) == "rate-limit store unreachable"
        with pytest.raises(LimiterUnavailable):
            await lim.release("k", "lease")
    finally:
        await lim.close()


@pytest.mark.anyio
async def test_silent_redis_times_out(anyio_backend: str) -> None:
    # A socket that completes the TCP handshake (backlog) but never answers.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        lim = RedisRateLimiter(f"redis://127.0.0.1:{server.getsockname()[1]}", socket_timeout_s=0.3)
        try:
            start = time.monotonic()
            with pytest.raises(LimiterUnavailable, match="unreachable"):
                await lim.acquire("k", Limits(rpm=5), images=1, now=T0)
            assert time.monotonic() - start < 2
        finally:
            await lim.close()


def test_build_rate_limiter_picks_the_backend(redis_url: str) -> None:
    assert isinstance(build_rate_limiter(None), LocalRateLimiter)
    assert isinstance(build_rate_limiter(None, lease_ttl_s=5), LocalRateLimiter)
    assert isinstance(build_rate_limiter(redis_url, prefix="x:"), RedisRateLimiter)


# -- The file, from processes ----------------------------------------------------------------------


def _acquire_in_a_process(path: str, calls: int, results: Any) -> None:
    """A process of its own: `calls` acquisitions on the shared file; puts how many were allowed."""

    async def run() -> int:
        lim = LocalRateLimiter.shared(Path(path))
        try:
            return sum(
                [(await lim.acquire("k", Limits(rpm=50), images=1, now=T0)).allowed for _ in range(calls)]
            )
        finally:
            await lim.close()

    results.put(asyncio.run(run()))


def test_processes_sharing_the_file_count_exactly(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    path = str(tmp_path / "workers.sqlite")
    LocalRateLimiter.shared(Path(path))  # the table, before the race
    processes = [ctx.Process(target=_acquire_in_a_process, args=(path, 60, results)) for _ in range(3)]
    for p in processes:
        p.start()
    allowed = [results.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=10)
    assert sum(allowed) == 50, allowed  # 180 asked, from three processes at once
