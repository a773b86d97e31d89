"""Where the request path's database calls run: in place when a SQLite request is alone, else on
the database thread (flow/database.py)."""

from __future__ import annotations

import threading

import anyio
import pytest

from imagegate.flow.database import Database


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
