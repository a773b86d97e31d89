"""Memory allocation of a serving process: keep large buffers in the heap.

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

glibc only (`mallopt`); elsewhere (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024 * 1024  # larger allocations are still mapped (an upload's 50 MB...)
TRIM_THRESHOLD = 256 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Tune this process's allocator as above; whether it could (glibc's mallopt was found)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
