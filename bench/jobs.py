"""Job submission latency: how long `Prefer: respond-async` takes to answer 202 (the whole
admission: auth, validation, moderation, rate limits, the reservation and the job's row), side by
side with a synchronous request through the same server, on SQLite.

Run: .venv/bin/python bench/jobs.py [--duration 5] [--concurrency 16] [--workers 1,2]

`imagegate serve` (its own process(es), SQLite in a temporary directory, an `internal` key: no
limits, `IMAGEGATE_JOB_RUNNERS=0` so the submissions are measured alone) is driven by `wrk`
(bench/_wrk.py), that many keep-alive connections submitting at once for --duration seconds. The
synchronous row renders a 64x64 placeholder (the smallest real work). The issue's goal: the 202 in
under 10 ms median at 16 concurrent submitters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import ROOT  # noqa: F401 - puts the repository on sys.path
from _wrk import wrk

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
    parser.add_argument("--workers", default="1,2", help="comma-separated imagegate worker counts")
    args = parser.parse_args()
    print(f"wrk, {args.duration:g} s per row, SQLite")
    head = f"  {'workers':>7} {'clients':>7} {'request':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(head + f" {'non-2xx':>7}")
    for workers in (int(w) for w in args.workers.split(",")):
        with (
            tempfile.TemporaryDirectory() as tmp,
            spawn_server(
                Path(tmp), own_env=True, quiet=True, IMAGEGATE_JOB_RUNNERS="0", IMAGEGATE_WORKERS=str(workers)
            ) as server,
        ):
            repo = KeyRepo(make_engine(f"sqlite:///{Path(tmp) / 'imagegate.db'}"), SystemClock())
            secret = repo.create("bench", "internal", credit_micros=10**12)[1]
            url = server.api_base + "/images/generations"
            for clients in sorted({1, args.concurrency}):
                for name, headers in (
                    ("submit (202)", {"Prefer": "respond-async"}),
                    ("synchronous 64x64 (200)", {}),
                ):
                    r = wrk(url, secret, BODY, clients, args.duration, headers)
                    print(
                        f"  {workers:>7} {clients:>7} {name:<26} {r.rps:>8.1f} {r.p50_ms:>8.2f} "
                        f"{r.p99_ms:>8.2f} {r.non_2xx + r.errors:>7}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
