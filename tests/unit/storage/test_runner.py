"""Where the request path's database calls run: in place when a SQLite request is alone, else on
the database thread (storage/runner.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from imagegate.storage.db import make_engine
from imagegate.storage.runner import Database


def where() -> str:
    return "loop" if threading.current_thread() is threading.main_thread() else "thread"


@pytest.mark.anyio
async def test_alone_in_place_else_on_the_thread() -> None:
    db = Database(sqlite=True)
    db.active = 1
    assert await db.run(where) == "loop"  # the only request, the thread idle
    db.active = 2
    assert await db.run(where) == "thread"  # another request could use the loop meanwhile
    db.active = 1
    assert await db.run_in_thread(where) == "thread"  # background work: always the thread

    started, release = threading.Event(), threading.Event()

    def busy() -> str:
        started.set()
        release.wait(5)
        return where()

    async with anyio.create_task_group() as tg:
        results: list[str] = []

        async def background() -> None:
            results.append(await db.run_in_thread(busy))

        tg.start_soon(background)
        await anyio.to_thread.run_sync(started.wait, 5)
        # The thread is busy (a sweep): a call made now waits its turn there, never runs beside it.
        tg.start_soon(_append, results, db)
        await anyio.sleep(0.05)
        assert results == []
        release.set()
    assert sorted(results) == ["thread", "thread"]


async def _append(results: list[str], db: Database) -> None:
    results.append(await db.run(where))


@pytest.mark.anyio
async def test_other_databases_always_use_worker_threads() -> None:
    db = Database(sqlite=False)
    db.active = 1
    assert await db.run(where) == "thread"


@pytest.mark.anyio
async def test_an_in_place_write_never_waits_on_the_loop_for_another_writer(tmp_path: Path) -> None:
    """Another connection (the CLI, an admin call, another process) holds SQLite's write lock: the
    in-place call fails at once, is rolled back, and is made again on the thread, which waits."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    db = Database(sqlite=True)
    db.active = 1
    calls: list[str] = []

    def write() -> int:
        calls.append(where())
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        tg.start_soon(anyio.to_thread.run_sync, lambda: (time.sleep(0.3), holder.rollback()))
        assert await db.run(write) == 1
        tg.cancel_scope.cancel()
    assert calls == ["loop", "thread"] and ticks >= 10  # the loop kept turning meanwhile
    holder.close()
    assert await db.run(write) == 2 and calls[-1] == "loop"  # no one else writing: in place again
    engine.dispose()
