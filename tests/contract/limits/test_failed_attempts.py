"""One contract for every count of failed sign-ins (limits/failures.py): in process, in a file the
workers of one machine share, and in Redis. Redis keeps its own time, so the windows here are
short and real."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from imagegate.limits.failures import WINDOWS, FailedAttempts, LocalFailedAttempts, build_failed_attempts
from imagegate.records import FileRecords, MemoryRecords
from tests.contract.conftest import FileStore, RedisStore, concurrently

WINDOW_S = 2.0  # long enough that a slow machine makes every failure inside one window
Factory = Callable[[int], FailedAttempts]


@pytest.fixture
async def new_counter(store: RedisStore | FileStore | None) -> AsyncIterator[Factory]:
    """Counters on the store of this run; two made on one file or one Redis are two processes'."""
    made: list[FailedAttempts] = []

    def make(max_failures: int) -> FailedAttempts:
        if store is None:
            made.append(LocalFailedAttempts(max_failures, WINDOW_S))
        elif isinstance(store, FileStore):
            made.append(LocalFailedAttempts.shared(store.path, max_failures, WINDOW_S))
        else:
            made.append(
                build_failed_attempts(
                    store.url, max_failures=max_failures, window_s=WINDOW_S, prefix=store.prefix
                )
            )
        return made[-1]

    yield make
    for counter in made:
        await counter.close()


@pytest.mark.anyio
async def test_an_address_is_blocked_at_its_last_failure_until_the_window_ends(new_counter: Factory) -> None:
    counter = new_counter(3)
    assert [await counter.failed("203.0.113.7", time.time()) for _ in range(3)] == [0, 0, 0]
    after_first = time.time()
    wait = await counter.blocked_for("203.0.113.7", time.time())
    assert 0 < wait <= WINDOW_S
    assert wait >= WINDOW_S - (time.time() - after_first) - 0.5  # the window runs from the first failure
    assert await counter.failed("203.0.113.7", time.time()) > 0  # past the limit: refused, not 401
    assert await counter.blocked_for("203.0.113.8", time.time()) == 0  # another address
    time.sleep(wait + 0.05)
    assert await counter.blocked_for("203.0.113.7", time.time()) == 0
    assert await counter.failed("203.0.113.7", time.time()) == 0  # a new window, counted from one
    assert await counter.blocked_for("203.0.113.7", time.time()) == 0


@pytest.mark.anyio
async def test_concurrent_failures_are_counted_exactly_across_processes(
    new_counter: Factory, store: RedisStore | FileStore | None
) -> None:
    """A burst of wrong keys: exactly the limit's worth are within it, whichever process counts."""
    a = new_counter(10)
    b = new_counter(10) if store is not None else a  # memory: one process, its coroutines
    waits = await concurrently(30, lambda i: (a if i % 2 else b).failed("198.51.100.1", time.time()))
    assert sorted(w > 0 for w in waits) == [False] * 10 + [True] * 20
    assert await a.blocked_for("198.51.100.1", time.time()) > 0
    assert await b.blocked_for("198.51.100.1", time.time()) > 0


@pytest.mark.anyio
async def test_redis_out_of_reach_refuses_rather_than_lets_a_guess_through() -> None:
    from imagegate.errors import ServiceUnavailable
    from imagegate.http.serve import free_port

    counter = build_failed_attempts(f"redis://127.0.0.1:{free_port()}/0", max_failures=3, window_s=60)
    try:
        with pytest.raises(ServiceUnavailable):
            await counter.failed("203.0.113.1", time.time())
        with pytest.raises(ServiceUnavailable):
            await counter.blocked_for("203.0.113.1", time.time())
    finally:
        await counter.close()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_ended_windows_are_swept_so_the_store_does_not_grow_forever(kind: str, tmp_path: Path) -> None:
    """An address that failed once stays only until a sweep after its window ended (Redis, not
    here, expires each counter with its window)."""
    records = (
        MemoryRecords[Any]()
        if kind == "memory"
        else FileRecords(tmp_path / "r.sqlite", "failed_attempts", WINDOWS)
    )
    counter = LocalFailedAttempts(3, 60, records)
    counter.SWEEP_EVERY = 50
    t = 1_800_000_000.0
    for i in range(49):
        await counter.failed(f"203.0.113.{i}", t)
    assert records.get("203.0.113.0") is not None
    await counter.failed("198.51.100.1", t + 61)  # the 50th new window: the 49 ended ones go
    assert all(records.get(f"203.0.113.{i}") is None for i in range(49))
    assert records.get("198.51.100.1") is not None
    await counter.close()
