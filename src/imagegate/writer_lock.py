"""One writer at a time across processes, woken by the kernel: for the SQLite files that several
processes write (`serve --workers N`: the database, and the shared-state file of the limits and
breakers without Redis).

A SQLite writer that meets another's lock polls for it, sleeping 1, 2, 5, 10, 15, 20, 25... ms
between tries (its default busy handler). The lock is held for a fraction of a millisecond, so the
writer sleeps far longer than it had to wait, and with it the process's database thread
(storage/runner.py) or, for the shared-state file, its event loop. Each imagegate writer holds an
flock on `<file>.writer-lock` around its write transaction instead: a waiting writer sleeps in the
kernel and is woken when the lock is released. SQLite's own lock stays, for the writers that do not
take this one (the CLI's commands): they still poll.

An flock belongs to an open file description, which the threads of a process share: a
threading.Lock orders the threads, the flock the processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path


class WriterLock:
    def __init__(self, path: Path) -> None:
        """OSError where the file can be neither made nor opened. flock needs no write access: a
        user who may only read the data directory's files can still take it."""
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._threads = threading.Lock()

    @classmethod
    def beside(cls, database: str | Path) -> WriterLock:
        """The lock of the SQLite file `database`, in the same folder."""
        return cls(Path(f"{database}.writer-lock"))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Held for the block, waiting as long as it takes."""
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def held_if_free(self) -> Iterator[bool]:
        """Held for the block if it is free now (True); else not held and not waited for (False):
        for the event loop, which must not wait."""
        if not self._threads.acquire(blocking=False):
            yield False
            return
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        """Release the file (a second call does nothing)."""
        with self._threads:  # not while a thread holds it
            fd, self._fd = self._fd, -1
        if fd != -1:
            os.close(fd)
