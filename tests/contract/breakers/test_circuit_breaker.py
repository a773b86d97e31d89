"""One contract for every CircuitBreaker: in-process and Redis, driven by a manual `now`.

Redis runs as two breakers with their own connection pools on one prefix (two gateway replicas);
the in-process backend is one breaker used twice (one process).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagegate.breakers import (
    BreakerConfig,
    BreakerState,
    BreakerUnavailable,
    CircuitBreaker,
    LocalCircuitBreaker,
    build_circuit_breaker,
)
from imagegate.breakers.redis import RedisCircuitBreaker
from tests.contract.conftest import FileStore, RedisStore, concurrently, pttls

T0 = 1_800_000_000.0  # a multiple of the 6 s bucket: windows below start on a bucket edge
CONFIG = BreakerConfig(failure_threshold=5, window_s=60, failure_rate=0.5, min_requests=20, cooldown_s=30)
CLOSED = BreakerState("closed", 0, 0, 0, None, None)


@pytest.fixture
async def replicas(
    store: RedisStore | FileStore | None, anyio_backend: str
) -> AsyncIterator[list[CircuitBreaker]]:
    """Two views of one breaker: two Redis clients (two replicas), two connections to one shared
    file (two workers), or one in-process breaker twice."""
    if store is None:
        one = LocalCircuitBreaker(CONFIG)
        yield [one, one]
        return
    pair: list[CircuitBreaker] = [
        LocalCircuitBreaker.shared(store.path, CONFIG)
        if isinstance(store, FileStore)
        else RedisCircuitBreaker(store.url, CONFIG, prefix=store.prefix)
        for _ in range(2)
    ]
    yield pair
    for breaker in pair:
        await breaker.close()


async def record_all(
    replicas: list[CircuitBreaker], outcomes: str, *, now: float = T0, step: float = 0.0, name: str = "ch"
) -> list[BreakerState]:
    """Record "F"/"o" outcomes (failure/success), alternating replicas, `step` seconds apart."""
    return [
        await replicas[i % 2].record(name, outcome == "o", now + i * step)
        for i, outcome in enumerate(outcomes)
    ]


async def open_circuit(replicas: list[CircuitBreaker], now: float = T0, name: str = "ch") -> None:
    state = (await record_all(replicas, "FFFFF", now=now, name=name))[-1]
    assert (state.state, state.opened_at) == ("open", now)


async def concurrent_allows(replicas: list[CircuitBreaker], calls: int, now: float) -> list[bool]:
    return await concurrently(calls, lambda i: replicas[i % 2].allow("ch", now))


# -- closed: the two rules -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_opens_after_n_consecutive_failures_not_n_minus_1(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    states = await record_all(replicas, "FFFF")
    assert [s.consecutive_failures for s in states] == [1, 2, 3, 4]
    assert all(s.state == "closed" for s in states)
    assert await a.allow("ch", T0) and await b.allow("ch", T0)
    opened = await a.record("ch", False, T0 + 1)
    assert opened == BreakerState("open", 5, 5, 5, T0 + 1, "5 consecutive failures")
    assert not await a.allow("ch", T0 + 1)
    assert not await b.allow("ch", T0 + 1)


@pytest.mark.anyio
async def test_a_success_resets_the_consecutive_count(replicas: list[CircuitBreaker]) -> None:
    states = await record_all(replicas, "FFFFoFFFF")
    assert [s.consecutive_failures for s in states] == [1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert states[-1] == BreakerState("closed", 4, 9, 8, None, None)
    assert await replicas[0].allow("ch", T0)


@pytest.mark.parametrize("pattern", ["oF" * 10, "Fo" * 10])
@pytest.mark.anyio
async def test_failure_rate_opens_at_min_requests(replicas: list[CircuitBreaker], pattern: str) -> None:
    states = await record_all(replicas, pattern, step=0.5)
    assert all(s.state == "closed" for s in states[:-1])
    # 10 of 20 fail: the 20th outcome opens it, even when that one is a success.
    assert states[-1] == BreakerState(
        "open", 1 if pattern.endswith("F") else 0, 20, 10, T0 + 9.5, "failure rate 50% over 60 s"
    )
    assert not await replicas[1].allow("ch", T0 + 10)


@pytest.mark.anyio
async def test_failure_rate_just_below_the_threshold_stays_closed(replicas: list[CircuitBreaker]) -> None:
    states = await record_all(replicas, "oFoooFoFoFoFoFoFoFoFoFoFoFoF", step=0.1)  # 13/28 = 46%
    assert states[-1] == BreakerState("closed", 1, 28, 13, None, None)
    state = await replicas[0].record("ch", False, T0 + 3)  # 14/29 = 48%
    assert state.state == "closed"
    state = await replicas[1].record("ch", False, T0 + 3)  # 15/30 = 50%
    assert (state.state, state.reason) == ("open", "failure rate 50% over 60 s")


@pytest.mark.anyio
async def test_below_min_requests_never_opens_by_rate(replicas: list[CircuitBreaker]) -> None:
    states = await record_all(replicas, "FFFFo" * 3 + "FFFF")  # 19 requests, 16 failures: 84%
    assert states[-1] == BreakerState("closed", 4, 19, 16, None, None)
    # 75% failures, one every 4 s: the 60 s window never holds 20 requests, so it never opens ...
    states = await record_all(replicas, "FFFo" * 50, now=T0 + 600, step=4.0, name="sparse")
    assert all(s.state == "closed" for s in states)
    assert max(s.window_requests for s in states) < 20
    # ... while the same pattern twice as often does.
    states = await record_all(replicas, "FFFo" * 5, now=T0 + 600, step=2.0, name="dense")
    assert states[-1] == BreakerState("open", 0, 20, 15, T0 + 638, "failure rate 75% over 60 s")


@pytest.mark.anyio
async def test_the_window_forgets_old_outcomes(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await record_all(replicas, "Foooo" * 2)  # at T0, the start of a 6 s bucket
    await record_all(replicas, "Foooo" * 2, now=T0 + 5.9)  # the end of the same bucket
    assert await a.state("ch", T0 + 59.9) == BreakerState("closed", 0, 20, 4, None, None)
    # The whole bucket leaves the window together: precision is one bucket (window_s / 10).
    assert await b.state("ch", T0 + 60) == BreakerState("closed", 0, 0, 0, None, None)
    state = await a.record("ch", False, T0 + 60)
    assert (state.state, state.window_requests, state.window_failures) == ("closed", 1, 1)


# -- open and half-open ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_allow_is_false_for_the_whole_cooldown(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas)
    for now in (T0, T0 + 1, T0 + 29.999):
        assert not await a.allow("ch", now)
        assert not await b.allow("ch", now)
    assert (await a.state("ch", T0 + 29.999)).state == "open"
    assert (await b.state("ch", T0 + 30)).state == "half_open"
    assert await a.allow("ch", T0 + 30)


@pytest.mark.anyio
async def test_outcomes_recorded_while_open_are_ignored(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas)
    before = await a.state("ch", T0 + 10)
    assert await a.record("ch", True, T0 + 10) == before  # a request admitted before it opened
    assert await b.record("ch", False, T0 + 11) == before
    assert await b.state("ch", T0 + 10) == before


@pytest.mark.anyio
async def test_exactly_one_probe_among_50_concurrent_callers(replicas: list[CircuitBreaker]) -> None:
    await open_circuit(replicas)
    assert sum(await concurrent_allows(replicas, 50, T0 + 30)) == 1
    # Until the probe reports back (or is given up), nobody else gets through.
    assert sum(await concurrent_allows(replicas, 50, T0 + 45)) == 0
    state = await replicas[0].state("ch", T0 + 45)
    assert (state.state, state.opened_at) == ("half_open", T0)


@pytest.mark.anyio
async def test_a_probe_success_closes_and_clears(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas)
    assert await a.allow("ch", T0 + 31)
    assert await b.record("ch", True, T0 + 32) == CLOSED
    assert await a.allow("ch", T0 + 32) and await b.allow("ch", T0 + 32)
    assert await a.state("ch", T0 + 32) == CLOSED
    # Counting starts afresh: four failures do not re-open it.
    states = await record_all(replicas, "FFFF", now=T0 + 33)
    assert states[-1] == BreakerState("closed", 4, 4, 4, None, None)


@pytest.mark.anyio
async def test_a_probe_failure_reopens_with_a_fresh_cooldown(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas)
    probe_at = T0 + 40
    assert await a.allow("ch", probe_at)
    state = await b.record("ch", False, probe_at + 2)
    assert state == BreakerState("open", 5, 5, 5, probe_at + 2, "half-open probe failed")
    assert not await a.allow("ch", probe_at + 2)
    assert not await b.allow("ch", probe_at + 31.999)
    assert await a.allow("ch", probe_at + 32)
    assert not await b.allow("ch", probe_at + 32)


@pytest.mark.anyio
async def test_a_silent_probe_is_given_up_after_the_cooldown(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas)
    assert await a.allow("ch", T0 + 30)  # this probe's process dies: it never records
    assert not await b.allow("ch", T0 + 59.999)
    assert await b.allow("ch", T0 + 60)  # the next caller becomes the probe
    assert not await a.allow("ch", T0 + 60)
    assert sum(await concurrent_allows(replicas, 50, T0 + 90)) == 1
    assert await a.record("ch", True, T0 + 91) == CLOSED


@pytest.mark.anyio
async def test_reset_closes_and_clears(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas)
    await a.reset("ch")
    assert await b.state("ch", T0) == CLOSED
    assert await b.allow("ch", T0)
    assert (await a.record("ch", False, T0)).consecutive_failures == 1
    await b.reset("never-seen")  # resetting an unknown name is harmless


@pytest.mark.anyio
async def test_state_changes_nothing(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    assert await a.state("never-seen", T0) == CLOSED
    await open_circuit(replicas)
    for _ in range(3):  # reading a half-open circuit does not take the probe
        assert (await b.state("ch", T0 + 30)).state == "half_open"
    assert await a.allow("ch", T0 + 30)


@pytest.mark.anyio
async def test_names_are_independent(replicas: list[CircuitBreaker]) -> None:
    a, b = replicas
    await open_circuit(replicas, name="one")
    assert await a.allow("two", T0) and await b.allow("two", T0)
    assert await b.state("two", T0) == CLOSED
    await record_all(replicas, "FFFF", name="two")
    assert (await a.state("one", T0)).state == "open"
    assert (await a.state("two", T0)).consecutive_failures == 4
    await a.reset("one")
    assert (await b.state("two", T0)).consecutive_failures == 4


# -- Redis only ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_backends_agree_exactly(redis_url: str, redis_prefix: str, anyio_backend: str) -> None:
    config = BreakerConfig(failure_threshold=4, window_s=10, failure_rate=0.6, min_requests=8, cooldown_s=3)
    memory, shared = LocalCircuitBreaker(config), RedisCircuitBreaker(redis_url, config, prefix=redis_prefix)
    rng = random.Random(4)
    now = T0
    seen: set[tuple[str, str | None]] = set()
    try:
        for _ in range(1500):
            now += rng.choice([0.0, 0.001, 0.3, 0.7, 1.0, 2.9, 3.0, 6.0])
            name = rng.choice(["a", "b"])
            action = rng.random()
            if action < 0.3:
                assert await memory.allow(name, now) == await shared.allow(name, now)
            elif action < 0.995:
                ok = rng.random() < 0.45
                mine, theirs = await memory.record(name, ok, now), await shared.record(name, ok, now)
                assert mine == theirs
                seen.add((mine.state, mine.reason and mine.reason.split(" ")[1]))
            else:
                await memory.reset(name)
                await shared.reset(name)
            assert await memory.state(name, now) == await shared.state(name, now)
        # The walk took every transition: both rules, probe failures, closes.
        assert seen >= {("closed", None), ("open", "consecutive"), ("open", "rate"), ("open", "probe")}
    finally:
        await shared.close()


@pytest.mark.anyio
async def test_keys_expire(redis_url: str, redis_prefix: str, anyio_backend: str) -> None:
    breaker = RedisCircuitBreaker(redis_url, CONFIG, prefix=redis_prefix)
    try:
        await breaker.record("ch", False, T0)
        await breaker.allow("ch", T0)
    finally:
        await breaker.close()
    ttls = pttls(redis_url, redis_prefix)
    assert list(ttls) == [redis_prefix + "breaker:ch"]
    assert 86_000_000 < ttls[redis_prefix + "breaker:ch"] <= 86_400_000


@pytest.mark.anyio
async def test_unreachable_redis_fails_fast(anyio_backend: str) -> None:
    breaker = RedisCircuitBreaker("redis://:hunter2@127.0.0.1:1/0", CONFIG)
    try:
        start = time.monotonic()
        with pytest.raises(BreakerUnavailable) as caught:
            await breaker.allow("ch", T0)
        assert time.monotonic() - start < 3
        assert str(caught.value) == "circuit-breaker store unreachable"
        for call in (breaker.record("ch", False, T0), breaker.state("ch", T0), breaker.reset("ch")):
            with pytest.raises(BreakerUnavailable, match="unreachable"):
                await call
        assert time.monotonic() - start < 3
    finally:
        await breaker.close()


def test_build_circuit_breaker_picks_the_backend(redis_url: str) -> None:
    assert isinstance(build_circuit_breaker(None, CONFIG), LocalCircuitBreaker)
    built = build_circuit_breaker(redis_url, CONFIG, prefix="x:")
    assert isinstance(built, RedisCircuitBreaker)
    assert (built.config, built.prefix) == (CONFIG, "x:")


@pytest.mark.parametrize(
    "field, value",
    [
        ("failure_threshold", 0),
        ("failure_threshold", True),
        ("min_requests", 0),
        ("window_s", 0),
        ("cooldown_s", -1),
        ("cooldown_s", float("inf")),
        ("failure_rate", 0),
        ("failure_rate", 1.5),
    ],
)
def test_config_rejects_nonsense(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_closed_circuit_is_allowed_without_a_write(tmp_path: Path) -> None:
    """The shared file's breaker answers a closed circuit by reading it, without the file's write
    lock (a write transaction per request was a tenth of a millisecond of every relayed one): it
    answers while another worker holds that lock. Outcomes are still written."""
    breaker = LocalCircuitBreaker.shared(tmp_path / "workers.sqlite", CONFIG)
    other = sqlite3.connect(tmp_path / "workers.sqlite", isolation_level=None)  # another worker
    try:
        await breaker.record("ch", ok=True, now=T0)  # the circuit has its row
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        assert await breaker.allow("ch", T0 + 1)  # before: waited for the lock (10 s, then failed)
        other.execute("ROLLBACK")
        await breaker.record("ch", ok=False, now=T0 + 1)
        assert (await breaker.state("ch", T0 + 1)).window_requests == 2
    finally:
        other.close()
        await breaker.close()
