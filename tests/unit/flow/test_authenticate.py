"""flow/authenticate.py looks keys up in place on SQLite (WAL), on a worker thread elsewhere
(Database.read)."""

from __future__ import annotations

import threading

import anyio
import pytest
from sqlalchemy import Engine

from imagegate.clock import ManualClock
from imagegate.errors import AuthenticationFailed
from imagegate.flow.authenticate import authenticate
from imagegate.storage.db import journal_is_wal, make_engine
from imagegate.storage.keys import ApiKey, KeyRepo
from imagegate.storage.runner import Database
from imagegate.storage.stores import SqlKeys


class _Recorder(KeyRepo):
    """A KeyRepo that notes the thread each lookup ran on."""

    threads: list[threading.Thread]

    def authenticate(self, secret: str) -> ApiKey | None:
        self.threads.append(threading.current_thread())
        return super().authenticate(secret)


def test_sqlite_lookups_run_in_place_and_others_on_a_worker_thread(engine: Engine) -> None:
    keys = _Recorder(engine, ManualClock())
    keys.threads = []
    key, secret = keys.create("app")
    sqlite = engine.dialect.name == "sqlite"
    assert journal_is_wal(engine) is sqlite
    db = Database(sqlite=sqlite, wal=journal_is_wal(engine))

    async def go() -> None:
        assert await authenticate(f"Bearer {secret}", SqlKeys(keys, db)) == key
        with pytest.raises(AuthenticationFailed):
            await authenticate(f"Bearer {secret}x", SqlKeys(keys, db))

    anyio.run(go)
    here = threading.current_thread()
    assert [t is here for t in keys.threads] == [sqlite, sqlite]


def test_sqlite_without_wal_keeps_the_worker_thread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    assert journal_is_wal(engine) is False
    engine.dispose()
