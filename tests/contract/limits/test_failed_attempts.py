"""One contract for every count of failed sign-ins (limits/failures.py): in process, in a file the
workers of one machine share, and in Redis. Redis keeps its own time, so the windows here are
short and real."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from imagegate.limits.failures import FailedAttempts, LocalFailedAttempts, build_failed_attempts
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
    first = time.time()
    for _ in range(2):
        await counter.failed("203.0.113.7", time.time())
    assert await counter.blocked_for("203.0.113.7", time.time()) == 0
    await counter.failed("203.0.113.7", time.time())
    wait = await counter.blocked_for("203.0.113.7", time.time())
    assert 0 < wait <= WINDOW_S - (time.time() - first) + 0.05  # the window runs from the first failure
    assert await counter.blocked_for("203.0.113.8", time.time()) == 0  # another address
    time.sleep(wait + 0.05)
    assert await counter.blocked_for("203.0.113.7", time.time()) == 0
    await counter.failed("203.0.113.7", time.time())  # a new window, counted from one
    assert await counter.blocked_for("203.0.113.7", time.time()) == 0


@pytest.mark.anyio
async def test_concurrent_failures_are_all_counted_across_processes(
    new_counter: Factory, store: RedisStore | FileStore | None
) -> None:
    a = new_counter(20)
    b = new_counter(20) if store is not None else a  # memory: one process, its coroutines
    await concurrently(19, lambda i: (a if i % 2 else b).failed("198.51.100.1", time.time()))
    assert await a.blocked_for("198.51.100.1", time.time()) == 0
    await b.failed("198.51.100.1", time.time())
    assert await a.blocked_for("198.51.100.1", time.time()) > 0
    assert await b.blocked_for("198.51.100.1", time.time()) > 0
