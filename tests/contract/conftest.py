"""What the contract suites share: the backend a test runs on, Redis keys unique to each test, and
concurrent callers.

A suite over every backend takes `store` (litestar's `store` fixture is the model): None runs it
in process, a `FileStore` in a SQLite file that several instances open (processes of one machine),
a `RedisStore` on Redis, under a prefix that no other test uses and that is emptied
after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
import redis

from tests.services import delete_prefix

T = TypeVar("T")


def pttls(url: str, prefix: str) -> dict[str, int]:
    """The milliseconds to live of every key under `prefix`, by full key name."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {key: client.pttl(key) for key in client.scan_iter(match=prefix + "*")}
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A prefix no other test uses (so backends can share one Redis); its keys go at teardown."""
    prefix = f"imagegate-test:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(redis_url, prefix)


@dataclass(frozen=True)
class RedisStore:
    """Where a Redis-backed implementation under test keeps its keys."""

    url: str
    prefix: str


@dataclass(frozen=True)
class FileStore:
    """Where an implementation shared by the processes of one machine keeps its records: a
    SQLite file (imagegate.records.FileRecords); each instance opened on it is one process's."""

    path: Path


@pytest.fixture(params=["memory", "file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RedisStore | FileStore | None:
    """The backend of one run: None (in process), a shared file, or Redis (skipped when there is none)."""
    if request.param == "memory":
        return None
    if request.param == "file":
        return FileStore(tmp_path / "records.sqlite")
    return RedisStore(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))


async def concurrently(calls: int, one: Callable[[int], Awaitable[T]]) -> list[T]:
    """Run `one(0)` ... `one(calls - 1)` as concurrent tasks; their results in the order they ended."""
    results: list[T] = []

    async def run(i: int) -> None:
        results.append(await one(i))

    async with anyio.create_task_group() as tg:
        for i in range(calls):
            tg.start_soon(run, i)
    return results
