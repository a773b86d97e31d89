"""Where the request path's database calls run: in place when a SQLite request is alone, else on
the database thread (storage/runner.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Engine, text

from imagegate.storage.db import make_engine
from imagegate.storage.runner import Database
from imagegate.writer_lock import WriterLock
from tests.unit.test_writer_lock import OtherProcess


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
    engine, calls, write = counting_writes(tmp_path / "db.sqlite")
    db = Database(sqlite=True)
    db.active = 1

    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    count, ticks = await run_while_held(db, write, holder.rollback)
    assert count == 1
    assert calls == ["loop", "thread"] and ticks >= 10  # the loop kept turning meanwhile
    holder.close()
    assert await db.run(write) == 2 and calls[-1] == "loop"  # no one else writing: in place again
    engine.dispose()


@pytest.mark.anyio
async def test_a_lone_requests_write_goes_to_the_thread_while_another_process_writes(
    tmp_path: Path,
) -> None:
    """In place only when the writer lock (imagegate/writer_lock.py) is free; else the call waits
    for it on the database thread, the event loop turning meanwhile, and runs as soon as the other
    process lets go."""
    database = tmp_path / "imagegate.db"
    engine, calls, write = counting_writes(database)
    db = Database(sqlite=True, wal=True, writers=WriterLock.beside(database))
    db.active = 1

    other = OtherProcess(Path(f"{database}.writer-lock"))
    with anyio.fail_after(5):  # a long read takes no writer lock: it does not wait for the writer
        assert await db.read_in_thread(lambda: engine.connect().close()) is None
    count, ticks = await run_while_held(db, write, other.release)
    assert count == 1
    assert calls == ["thread"] and ticks >= 10  # never tried on the loop; the loop kept turning
    assert await db.run(write) == 2 and calls[-1] == "loop"  # free again: in place
    assert await db.run_in_thread(write) == 3  # background writes take it too
    engine.dispose()
    assert db.writers is not None
    db.writers.close()


def counting_writes(database: Path) -> tuple[Engine, list[str], Callable[[], int]]:
    """A database with one table; a write that adds a row and counts them, noting where it ran."""
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    calls: list[str] = []

    def write() -> int:
        calls.append(where())
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

    return engine, calls, write


async def run_while_held(
    db: Database, write: Callable[[], int], release: Callable[[], object]
) -> tuple[int, int]:
    """`db.run(write)` while another writer holds the lock, which `release` (called on a thread
    0.3 s in) lets go; with how many times the event loop turned meanwhile."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        tg.start_soon(anyio.to_thread.run_sync, lambda: (time.sleep(0.3), release()))
        count = await db.run(write)
        tg.cancel_scope.cancel()
    return count, ticks
