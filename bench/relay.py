"""Relay overhead: a loopback fake upstream, called directly and through imagegate, in one run.

Run: .venv/bin/python bench/relay.py [--duration 3] [--concurrency 1,8,32]

Two fake upstreams (tests/fakes/upstream.py, each its own process) answer POST
/v1/images/generations: one with a 1024x1024 PNG as b64_json (about 1.5 MB of JSON), one with a
small JSON body (an 8x8 PNG). `imagegate serve` (its own process, SQLite in a temporary
directory, an `internal` key: no limits) has one channel per fake. For each payload and each
concurrency, that many clients (keep-alive connections driven by hand from one asyncio process)
keep a request in flight for --duration seconds, first directly against the fake, then through
imagegate; the table shows requests/s, p50 and p99 latency, the through/direct throughput ratio
and the median latency imagegate adds. Through imagegate every image is also decoded, hashed,
stored and billed on the way.

The issue's goals: through imagegate >= 0.5x the direct throughput for image-sized payloads at 32
concurrent clients, and < 2 ms added median latency for small ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import ROOT

from imagegate.clock import SystemClock
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.services import spawn_server

ADMIN = "bench-admin-key"
UPSTREAM_KEY = "sk-bench-upstream"


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    response_bytes: int


@contextlib.contextmanager
def fake_upstream(image_size: int) -> Iterator[str]:
    """`python -m tests.fakes.upstream` in its own process; yields its /v1 base URL."""
    args = [sys.executable, "-m", "tests.fakes.upstream"]
    args += ["--image-size", str(image_size)] if image_size else []
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class Connection:
    """One keep-alive HTTP/1.1 connection, spoken to by hand: a load generator light enough not to
    be the bottleneck (httpx's pool, at 32 connections, saturates a core before the servers do)."""

    def __init__(self, url: str, secret: str, body: bytes, headers: str = "") -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.request = (
            f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self) -> tuple[int, int]:
        """(status, body length) of one request."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:")
        )
        await self.reader.readexactly(length)
        if "connection: close" in head:
            await self.close()
        return status, length

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def load(
    url: str, secret: str, body: bytes, concurrency: int, duration: float, headers: str = "", ok: int = 200
) -> Result:
    connections = [Connection(url, secret, body, headers) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = size = 0
    for _ in range(2):  # warm-up: connections, caches
        await asyncio.gather(*(c.post() for c in connections))
    stop = time.perf_counter() + duration

    async def worker(connection: Connection) -> None:
        nonlocal errors, size
        while time.perf_counter() < stop:
            started = time.perf_counter()
            status, length = await connection.post()
            if status == ok:
                latencies.append(time.perf_counter() - started)
                size = length
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    wall = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in connections))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return Result(
        len(latencies) / wall, statistics.median(latencies) * 1000, p99 * 1000, len(latencies), errors, size
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    body = json.dumps({"prompt": "a red fox in a blue forest", "size": "1024x1024", "quality": "medium"})

    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_upstream(1024) as big,
        fake_upstream(0) as small,
        spawn_server(Path(tmp), own_env=True, quiet=True, IMAGEGATE_ADMIN_KEY=ADMIN) as server,
    ):
        base = server.base_url
        admin = {"Authorization": f"Bearer {ADMIN}"}
        for name, fake, model in (("image-sized", big, "gpt-image-1"), ("small", small, "gpt-image-1-mini")):
            channel = {"name": name, "base_url": fake, "api_key": UPSTREAM_KEY, "models": [model]}
            httpx.post(base + "/admin/channels", headers=admin, timeout=30, json=channel).raise_for_status()
        repo = KeyRepo(make_engine(f"sqlite:///{Path(tmp) / 'imagegate.db'}"), SystemClock())
        secret = repo.create("bench", "internal", credit_micros=10**12)[1]
        repo.engine.dispose()

        print(
            f"{os.cpu_count()} CPUs; {args.duration:g} s per measurement; imagegate and each fake upstream "
            "in its own process; one asyncio client process, one keep-alive connection per client"
        )
        print(
            f"{'payload':<12} {'conc':>4} | {'direct req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | "
            f"{'imagegate req/s':>15} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5} {'+p50 ms':>7}"
        )
        for name, fake, model in (("image-sized", big, "gpt-image-1"), ("small", small, "gpt-image-1-mini")):
            payload = json.dumps({**json.loads(body), "model": model}).encode()
            for conc in levels:
                # The image-sized runs write hundreds of MB of images: flush them to disk first, so
                # their writeback does not land in the next measurement.
                os.sync()
                direct = asyncio.run(
                    load(fake + "/images/generations", UPSTREAM_KEY, payload, conc, args.duration)
                )
                os.sync()
                relay = asyncio.run(
                    load(base + "/v1/images/generations", secret, payload, conc, args.duration)
                )
                if direct.errors or relay.errors:
                    print(f"  errors: direct {direct.errors}, imagegate {relay.errors}")
                print(
                    f"{name:<12} {conc:>4} | "
                    f"{direct.rps:>12.1f} {direct.p50_ms:>7.1f} {direct.p99_ms:>7.1f} | "
                    f"{relay.rps:>15.1f} {relay.p50_ms:>7.1f} {relay.p99_ms:>7.1f} | "
                    f"{relay.rps / direct.rps:>5.2f} {relay.p50_ms - direct.p50_ms:>7.1f}",
                    flush=True,
                )
            print(
                f"  ({name}: {direct.response_bytes / 1e6:.3f} MB per direct answer, "
                f"{relay.response_bytes / 1e6:.3f} MB through imagegate: b64_json and a signed url)"
            )


if __name__ == "__main__":
    main()
