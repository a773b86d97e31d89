"""What a serving process asks of the C library (glibc; elsewhere nothing changes).

`keep_large_buffers`: keep large buffers in the heap.

A relayed image passes through several buffers of its size (the upstream's body, the parsed
base64, the decoded bytes, the response), each over glibc's mmap threshold (128 KiB to 32 MiB,
adjusted as it goes). Such buffers are mapped fresh and unmapped on free, so every page of every
buffer is faulted in and zeroed by the kernel on each request: 430-540 page faults and 1.8-2 ms of
system time to read and parse one 1.5 MB answer on this machine (/tmp bench, aiohttp + orjson).
Served from the heap, and kept there when freed, the same buffers are reused: 0 faults, 0.3 ms.
A long-running server gains less, as glibc raises its threshold after the first large frees:
through the gateway (bench/relay.py's image-sized answers, 32 connections) 137 -> 49 faults per
request. The price is that the process keeps its peak heap instead of returning it at once (up to
`TRIM_THRESHOLD` free at the top of the heap is kept).

`die_with_supervisor`: a worker of `serve --workers N` must not outlive its supervisor. Killed
with SIGKILL (the OOM killer, `kill -9`), the supervisor cannot stop its workers, which would go on
serving the port (and running jobs) with nobody to restart or stop them. Each worker asks Linux to
send it SIGTERM when its parent dies (`PR_SET_PDEATHSIG`), and exits at once if it already has.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024 * 1024  # larger allocations are still mapped (an upload's 50 MB...)
TRIM_THRESHOLD = 256 * 1024 * 1024
PR_SET_PDEATHSIG = 1
SUPERVISOR_PID = "IMAGEGATE_SUPERVISOR_PID"  # set by `serve` before it starts the workers


def _libc(name: str) -> Callable[..., Any] | None:
    """A C library function, or None where there is no such library or function."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def keep_large_buffers() -> bool:
    """Tune this process's allocator as above; whether it could (glibc's mallopt was found)."""
    mallopt = _libc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def die_with_supervisor() -> None:
    """SIGTERM to this process when its parent dies (Linux); elsewhere nothing."""
    prctl = _libc("prctl")
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    expected = os.environ.get(SUPERVISOR_PID)
    if expected and os.getppid() != int(expected):  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)
