"""Records: one small state record per name (a rate-limit subject, a channel's circuit), read,
changed and written back atomically, for the backends that need no Redis.

- `MemoryRecords`: in this process's memory (one process: `imagegate serve --workers 1`, tests).
- `FileRecords`: in a SQLite file that every process of one machine opens (`serve --workers N`
  without Redis). Each update is one `BEGIN IMMEDIATE` transaction, so concurrent updates from
  any number of processes (and threads) are serialized by SQLite's write lock, exactly as the
  Redis backends' scripts are by Redis; the processes queue for it on an flock
  (imagegate/writer_lock.py), which wakes the next at once, where SQLite's busy handler would
  have it sleep 1 ms and more on the event loop. The file holds only counters that the in-memory backend
  would lose on a restart anyway: `synchronous=OFF`, and the server starts it empty.

`update(name, change)` hands `change` the stored record (None: never seen) and stores what it
returns; `change` must not await or block, it runs inside the lock. Callers' records are
dataclasses; `Codec` turns them to and from JSON for the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from imagegate.writer_lock import WriterLock

T = TypeVar("T")
R = TypeVar("R")

BUSY_TIMEOUT_S = 10.0  # an update holds the lock for tens of microseconds


@dataclass(frozen=True)
class Codec(Generic[T]):
    """A record to JSON-able values and back."""

    dump: Callable[[T], Any]
    load: Callable[[Any], T]


class Records(Protocol[T]):
    def update(self, name: str, change: Callable[[T | None], tuple[T | None, R]]) -> R:
        """Atomically: `change(stored)` -> (record to store, None to delete; result); the result."""
        ...

    def get(self, name: str) -> T | None:
        """The stored record, or None."""
        ...

    def sweep(self, stale: Callable[[T], bool]) -> int:
        """Delete every record `stale` says is; how many went."""
        ...

    def close(self) -> None:
        """Release the file; unusable afterwards."""
        ...


class MemoryRecords(Generic[T]):
    """Records in this process: one dict, one lock (no copy: `change` may mutate in place)."""

    def __init__(self) -> None:
        self._records: dict[str, T] = {}
        self._lock = threading.Lock()

    def update(self, name: str, change: Callable[[T | None], tuple[T | None, R]]) -> R:
        with self._lock:
            record, result = change(self._records.get(name))
            if record is None:
                self._records.pop(name, None)
            else:
                self._records[name] = record
            return result

    def get(self, name: str) -> T | None:
        with self._lock:
            return self._records.get(name)

    def sweep(self, stale: Callable[[T], bool]) -> int:
        with self._lock:
            gone = [name for name, record in self._records.items() if stale(record)]
            for name in gone:
                del self._records[name]
            return len(gone)

    def close(self) -> None:
        return None


class FileRecords(Generic[T]):
    """Records in a SQLite file shared by the processes of one machine (see the module's doc)."""

    def __init__(self, path: Path, table: str, codec: Codec[T]) -> None:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self.path, self.table, self.codec = path, table, codec
        # One connection per instance, used under a lock (the event loop and worker threads).
        self._conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()  # the connection's
        self._writers = WriterLock.beside(path)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=OFF")
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, record TEXT NOT NULL)"
            )
        self._select = f"SELECT record FROM {table} WHERE name = ?"
        self._upsert = (
            f"INSERT INTO {table} (name, record) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET record = excluded.record"
        )
        self._delete = f"DELETE FROM {table} WHERE name = ?"

    def update(self, name: str, change: Callable[[T | None], tuple[T | None, R]]) -> R:
        with self._lock, self._writers.held():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(self._select, (name,)).fetchone()
                record, result = change(None if row is None else self.codec.load(json.loads(row[0])))
                if record is None:
                    if row is not None:
                        conn.execute(self._delete, (name,))
                else:
                    conn.execute(self._upsert, (name, json.dumps(self.codec.dump(record))))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

    def get(self, name: str) -> T | None:
        with self._lock:
            row = self._conn.execute(self._select, (name,)).fetchone()
        return None if row is None else self.codec.load(json.loads(row[0]))

    def sweep(self, stale: Callable[[T], bool]) -> int:
        with self._lock, self._writers.held():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(f"SELECT name, record FROM {self.table}").fetchall()
                gone = [(name,) for name, record in rows if stale(self.codec.load(json.loads(record)))]
                conn.executemany(self._delete, gone)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return len(gone)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._writers.close()
