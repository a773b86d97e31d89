"""The writer lock of a SQLite file that several processes write (imagegate/writer_lock.py): one
holder across processes and threads, and a waiter let in as soon as it is released (that the event
loop never waits for it: tests/unit/storage/test_runner.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from imagegate.cli.stores import open_stores
from imagegate.writer_lock import WriterLock
from tests.conftest import make_settings

# Another process: takes the lock, says so, holds it until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from imagegate.writer_lock import WriterLock
lock = WriterLock(Path(sys.argv[1]))
with lock.held():
    print("held", flush=True)
    sys.stdin.read()
"""


class OtherProcess:
    """A process holding `path`'s writer lock until `release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0
        self.proc.stdout.close()


def test_one_holder_across_processes(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.writer-lock")
    other = OtherProcess(tmp_path / "db.writer-lock")
    with lock.held_if_free() as free:
        assert not free  # not waited for
    got = threading.Event()

    def wait() -> None:
        with lock.held():
            got.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not got.wait(0.2)  # still held by the other process
    released = time.monotonic()
    other.release()
    assert got.wait(10)
    waiter.join()
    # Woken by the kernel: no busy handler's 1, 2, 5, 10 ms sleeps in between (loose bound).
    assert time.monotonic() - released < 5
    with lock.held_if_free() as free:
        assert free
    lock.close()


def test_one_holder_across_threads(tmp_path: Path) -> None:
    """The threads of one process share the flock (one open file description): its thread lock
    keeps them from holding it together."""
    lock = WriterLock(tmp_path / "db.writer-lock")
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.held():
            inside.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    with lock.held_if_free() as free:
        assert not free
    leave.set()
    holder.join()
    with lock.held_if_free() as free:
        assert free
    lock.close()


def test_close_is_once_and_the_commands_stores_release_the_file(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "x.writer-lock")
    lock.close()
    lock.close()  # nothing left to close, no other descriptor closed by mistake
    open_stores(make_settings(tmp_path), create=True).close()  # the database, made by serve
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):  # each CLI command opens the stores once
        open_stores(make_settings(tmp_path)).close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert (tmp_path / "imagegate.db.writer-lock").exists()
