"""Job submission latency: how long `Prefer: respond-async` takes to answer 202 (the whole
admission: auth, validation, moderation, rate limits, the reservation and the job's row), side by
side with a synchronous request through the same server, on SQLite.

Run: .venv/bin/python bench/jobs.py [--duration 5] [--concurrency 16]

`imagegate serve` (its own process, SQLite in a temporary directory, an `internal` key: no limits,
`IMAGEGATE_JOB_RUNNERS=0` so the submissions are measured alone) is driven by the relay bench's
hand-written keep-alive connections (bench/relay.py), that many submitting at once for
--duration seconds. The synchronous row renders a 64x64 placeholder (the smallest real work).
The issue's goal: the 202 in under 10 ms median at 16 concurrent submitters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from _common import ROOT  # noqa: F401 - puts the repository on sys.path
from relay import load

from imagegate.clock import SystemClock
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.services import spawn_server

BODY = json.dumps(
    {"model": "gpt-image-1", "prompt": "a lighthouse at dusk", "size": "64x64", "quality": "low"}
).encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        spawn_server(Path(tmp), own_env=True, quiet=True, IMAGEGATE_JOB_RUNNERS="0") as server,
    ):
        repo = KeyRepo(make_engine(f"sqlite:///{Path(tmp) / 'imagegate.db'}"), SystemClock())
        secret = repo.create("bench", "internal", credit_micros=10**12)[1]
        url = server.api_base + "/images/generations"
        prefer = "Prefer: respond-async\r\n"
        rows = []
        for clients in sorted({1, args.concurrency}):
            submit = asyncio.run(load(url, secret, BODY, clients, args.duration, prefer, 202))
            rows.append((clients, "submit (202)", submit))
            rows.append(
                (
                    clients,
                    "synchronous 64x64 (200)",
                    asyncio.run(load(url, secret, BODY, clients, args.duration)),
                )
            )
    print(f"{args.duration:g} s per row, SQLite, one server process")
    print(f"  {'clients':>7} {'request':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for clients, name, r in rows:
        print(f"  {clients:>7} {name:<26} {r.rps:>8.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}")


if __name__ == "__main__":
    main()
