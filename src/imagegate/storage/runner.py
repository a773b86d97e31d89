"""Where database calls run: every caller (the request path, the admin and account routes, the
maintenance service) goes through one `Database`.

SQLite: on one worker thread, in turn (more threads made concurrent requests fight over the GIL
and over SQLite's one write lock, which a waiting writer polls for by sleeping 1, 2, 5... ms).
Except when nothing else is going on: a call made while this is the only request in flight and
the database thread is idle runs in place, on the event loop. A hop to the thread and back cost
0.1-0.2 ms on this machine, more than most of these transactions, and with no other request to
serve the loop loses nothing by waiting (and it never waits for another writer's lock: see
`run`). Under load the calls go to the thread, where SQLite's
commits overlap the other requests' network work (always in place, 32 clients: small bodies
351 -> 230 req/s).

The calls of `run` and `run_in_thread` hold the database file's writer lock
(imagegate/writer_lock.py), so the writers of several processes (`serve --workers N`) queue in the
kernel instead of polling SQLite's lock: a call on the thread waits for it, a call in place runs
only if it is free (else it goes to the thread). Writes made elsewhere (a streamed image's row,
`SqlBlobs.put`, on anyio's threads; the CLI's commands) wait SQLite's way.

Reads (`read`) never wait for a writer on SQLite in WAL mode (make_engine sets it): they run in
place whatever the load (the key lookup: about 50 us, less than the hop).

Other databases wait on the network: their calls take anyio's worker threads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread

from imagegate.storage.db import is_locked, without_waiting
from imagegate.writer_lock import WriterLock

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
DB_THREADS = 1  # bench/relay.py, 32 clients, through/direct: image-sized 0.42 -> 0.60 (2 threads: 0.52)


class Database:
    def __init__(self, sqlite: bool, wal: bool = False, writers: WriterLock | None = None) -> None:
        self.sqlite = sqlite
        self.wal = wal  # SQLite in WAL mode (storage/db.py journal_is_wal): readers never wait
        # A SQLite file's writers across processes (imagegate/writer_lock.py); None: no file.
        self.writers = writers
        # SQLite's calls take turns on DB_THREADS threads; None: anyio's default pool.
        self.limiter = anyio.CapacityLimiter(DB_THREADS) if sqlite else None
        self.active = 0  # requests in flight: `request()` counts them (a stream until it ends)
        self._threads = 0  # calls running on worker threads now (Stores.drained waits for them)
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        return self._threads

    def _counted(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)` on its worker thread, counted while it runs (even after its caller was
        cancelled: the thread goes on)."""
        with self._lock:
            self._threads += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._threads -= 1

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count one request in flight for as long as it holds the block."""
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    @property
    def in_place(self) -> bool:
        """Whether `run` would run a call now in place, on the event loop (see above)."""
        idle = self.limiter is not None and self.limiter.borrowed_tokens == 0
        return self.sqlite and self.active <= 1 and idle

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        if self.in_place:
            # The only request, the thread idle: no hop. Never a wait on the loop, though: when
            # another writer (another process, the CLI, an admin call) holds the lock, the call
            # is made on the thread instead (having failed at once, its transaction rolled back,
            # when it met SQLite's lock rather than the writer lock).
            with self._writing_if_free() as free:
                if free:
                    try:
                        with without_waiting():
                            return fn(*args)
                    except Exception as exc:
                        if not is_locked(exc):
                            raise
        return await anyio.to_thread.run_sync(self._counted, self._writing, fn, *args, limiter=self.limiter)

    async def read(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """A read-only call: in place on SQLite in WAL mode, else as `read_in_thread`."""
        if self.wal:
            return fn(*args)
        return await self.read_in_thread(fn, *args)

    async def read_in_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """A read too long for the event loop (a key's usage totals), on the thread, without the
        writer lock: no other process's writes wait for it."""
        return await anyio.to_thread.run_sync(self._counted, fn, *args, limiter=self.limiter)

    async def run_in_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Always on the thread (background work: sweeps can take a while)."""
        return await anyio.to_thread.run_sync(self._counted, self._writing, fn, *args, limiter=self.limiter)

    def _writing(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)` holding the writer lock, waited for (on a worker thread)."""
        if self.writers is None:
            return fn(*args)
        with self.writers.held():
            return fn(*args)

    @contextlib.contextmanager
    def _writing_if_free(self) -> Iterator[bool]:
        if self.writers is None:
            yield True
            return
        with self.writers.held_if_free() as free:
            yield free
