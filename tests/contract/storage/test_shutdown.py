"""Shutting down never orphans a database connection.

The server's background tasks (job runners, webhook delivery, sweeps) are cancelled at shutdown;
a cancelled task's database call keeps running on its worker thread, holding a pooled connection.
Disposing of the engine before that call ends left the connection open, to be closed by the
garbage collector later (psycopg's ResourceWarning, which failed an unrelated test in CI).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from pathlib import Path

import anyio.to_thread
import pytest
from sqlalchemy import text

from imagegate.clock import ManualClock
from imagegate.config import Settings
from imagegate.storage.stores import open_stores


@pytest.mark.anyio
async def test_a_cancelled_tasks_database_call_ends_before_the_engine_is_disposed(
    database_url: str, tmp_path: Path
) -> None:
    stores = open_stores(Settings(data_dir=tmp_path, database_url=database_url), ManualClock(1000.0))
    holding, cancelled = threading.Event(), threading.Event()
    finished: list[int] = []

    def slow_call() -> None:
        with stores.sql.connect() as conn:
            holding.set()
            cancelled.wait(10)
            time.sleep(0.3)  # a transaction still running when shutdown begins
            finished.append(conn.execute(text("SELECT 1")).scalar_one())

    task = asyncio.create_task(anyio.to_thread.run_sync(slow_call))
    deadline = time.monotonic() + 10
    while not holding.is_set():
        assert time.monotonic() < deadline and not task.done(), "the call never started"
        await asyncio.sleep(0.005)
    task.cancel()  # what the lifespan does to its background tasks
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stores.sql.pool.checkedout() == 1  # type: ignore[attr-defined]  # the thread runs on
    cancelled.set()

    await stores.drained()
    assert finished == [1]
    assert stores.sql.pool.checkedout() == 0  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stores.close()
        gc.collect()


@pytest.mark.anyio
async def test_drained_gives_up_after_its_timeout(tmp_path: Path) -> None:
    """A call that never ends does not hold shutdown forever."""
    stores = open_stores(Settings(data_dir=tmp_path), ManualClock(1000.0))
    release = threading.Event()

    def stuck() -> None:
        with stores.sql.connect():
            release.wait(5)

    task = asyncio.create_task(anyio.to_thread.run_sync(stuck))
    deadline = time.monotonic() + 10
    while not stores.sql.pool.checkedout():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline and not task.done(), "the call never started"
        await asyncio.sleep(0.005)
    started = time.monotonic()
    await stores.drained(timeout_s=0.1)
    assert 0.1 <= time.monotonic() - started < 2
    release.set()
    await task
    stores.close()
