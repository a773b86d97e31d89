"""Writing a big blob past the page cache (O_DIRECT), from a reused page-aligned buffer.

A buffered write copies the file into page-cache pages the kernel has to find first. On a virtual
machine whose free memory goes back to the host (a balloon's free page reporting, DAMON reclaim:
this project's machines, most cloud VMs of their kind), every such page is one the guest touches
for the first time, and the host maps it then: 1.1 MB took 4.4 ms of CPU to write, against 0.3 ms
for the same write into pages the guest had touched before (one process, same file system). With
O_DIRECT the bytes go from one buffer to the disk: 0.6 ms of CPU, 1.4 ms of wall time
(bench/relay.py's image-sized rows show what it does to a request).

O_DIRECT asks for an aligned buffer, offset and length: the data is copied into a page-aligned
buffer (a pool of anonymous mmaps, reused: their pages stay touched), padded to a whole number of
4 KiB blocks, written, and the file cut back to its size. A file system that refuses O_DIRECT
(EINVAL) makes `write` return False, and the caller writes the usual way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Callable, Iterator

BLOCK = 4096  # a multiple of every logical block size O_DIRECT asks alignment to (512, 4096)
MIN_BYTES = 256 * 1024  # smaller files: the page cache costs little, and no disk wait
FLAG = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere (macOS) 0: every write is buffered
_POOLED = 8  # buffers kept for reuse (one per concurrent writer; more are made and dropped)
_POOLED_MAX = 8 << 20  # a bigger buffer is dropped after its write


class AlignedBuffers:
    """Page-aligned buffers to lend, each at least as big as asked for: the smallest free one that
    fits, else a new one. Up to _POOLED of at most _POOLED_MAX bytes are kept for the next writer
    (a rare huge blob's buffer is dropped, not held for the life of the process)."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self, size: int) -> Iterator[mmap.mmap]:
        with self._lock:
            fits = [b for b in self._free if len(b) >= size]
            buffer = min(fits, key=len) if fits else None
            if buffer is not None:
                self._free.remove(buffer)
        if buffer is None:  # private: a forked child never shares these pages with its parent
            buffer = mmap.mmap(-1, -(-size // (1 << 20)) * (1 << 20), flags=mmap.MAP_PRIVATE)
        try:
            yield buffer
        finally:
            with self._lock:
                kept = len(self._free) < _POOLED and len(buffer) <= _POOLED_MAX
                if kept:
                    self._free.append(buffer)
            if not kept:
                buffer.close()


BUFFERS = AlignedBuffers()
OpenFile = Callable[[str, int], int]  # (path, flags) -> a new file's descriptor


def write(path: str, data: bytes, open_file: OpenFile) -> bool:
    """Write `data` as the new file `path` with O_DIRECT; False (nothing written, no file left)
    where the file system refuses it. `open_file(path, flags)` creates the file (the caller's
    way: its folder made, a stale file of that name replaced)."""
    size = len(data)
    padded = -(-size // BLOCK) * BLOCK
    with BUFFERS.take(padded) as buffer:
        buffer[:size] = data
        buffer[size:padded] = bytes(padded - size)
        try:
            fd = open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FLAG)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            with contextlib.suppress(FileNotFoundError):  # Linux may create it, then refuse
                os.unlink(path)
            return False
        try:
            with memoryview(buffer) as view:
                done = 0
                while done < padded:
                    if done % BLOCK:  # a short write (a signal, a full disk): finish buffered
                        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~FLAG)
                    done += os.write(fd, view[done:padded])
            os.ftruncate(fd, size)
        except OSError as exc:
            os.unlink(path)  # still open: closed below
            if exc.errno == errno.EINVAL:  # accepted at open, refused at write
                return False
            raise
        finally:
            os.close(fd)
    return True
