"""Relay throughput: a loopback fake upstream, called directly and through imagegate, by `wrk`.

Run: .venv/bin/python bench/relay.py [--duration 5] [--connections 1,8,32] [--workers 1,2]

Two fake upstreams (bench/fast_upstream.py, each its own process, on uvloop) answer POST
/v1/images/generations: one with a 1024x1024 PNG as b64_json (1.5 MB of JSON), one with a small JSON
body (an 8x8 PNG); each answer is a different image. `imagegate serve` (its own process(es), SQLite
in a temporary directory, an `internal` key: no limits) has one channel per fake; with --workers it
is measured once per worker count. The load generator is `wrk` (C, Debian's `wrk` package; `make
bench` installs it), with a Lua script for the POST: for each payload and connection count it runs
against the fake directly, then through imagegate, in the same run, and prints requests/s, p50 and
p99 latency, non-2xx answers, the through/direct ratio and the median latency imagegate adds.
Through imagegate every image is also hashed, stored, indexed, billed and its URL signed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
from _common import ROOT
from _wrk import wrk

from imagegate.clock import SystemClock
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.services import Process, die_with_parent, spawn_server

ADMIN = "bench-admin-key"
UPSTREAM_KEY = "sk-bench-upstream"


@contextlib.contextmanager
def fake_upstream(image_size: int) -> Iterator[str]:
    """bench/fast_upstream.py in its own process; yields its /v1 base URL."""
    args = [sys.executable, str(ROOT / "bench" / "fast_upstream.py")]
    args += ["--image-size", str(image_size)] if image_size else []
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def gateway(tmp: Path, workers: int, provenance: str) -> contextlib.AbstractContextManager[Process]:
    data = tmp / f"workers-{workers}"
    data.mkdir()
    return spawn_server(
        data,
        own_env=True,
        quiet=True,
        IMAGEGATE_ADMIN_KEY=ADMIN,
        IMAGEGATE_WORKERS=str(workers),
        IMAGEGATE_PROVENANCE=provenance,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--connections", default="1,8,32", help="comma-separated connection counts")
    ap.add_argument("--workers", default="1", help="comma-separated imagegate worker counts")
    ap.add_argument("--payloads", default="image-sized,small", help="image-sized, small or both")
    ap.add_argument("--provenance", default="true", help="false: store images without a C2PA manifest")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does)")
    levels = [int(c) for c in args.connections.split(",")]
    request = {"prompt": "a red fox in a blue forest", "size": "1024x1024", "quality": "medium"}
    print(
        f"{os.cpu_count()} CPUs; wrk {args.duration:g} s per measurement (-t min(conns, 2)); imagegate and "
        "each fake upstream in its own process"
    )
    with tempfile.TemporaryDirectory() as tmp, fake_upstream(1024) as big, fake_upstream(0) as small:
        fakes = {"image-sized": (big, "gpt-image-1"), "small": (small, "gpt-image-1-mini")}
        fakes = {name: fakes[name] for name in args.payloads.split(",")}
        for workers in (int(w) for w in args.workers.split(",")):
            with gateway(Path(tmp), workers, args.provenance) as server:
                base = server.base_url
                admin = {"Authorization": f"Bearer {ADMIN}"}
                for name, (fake, model) in fakes.items():
                    channel = {"name": name, "base_url": fake, "api_key": UPSTREAM_KEY, "models": [model]}
                    httpx.post(
                        base + "/admin/channels", headers=admin, timeout=30, json=channel
                    ).raise_for_status()
                db = Path(tmp) / f"workers-{workers}" / "imagegate.db"
                repo = KeyRepo(make_engine(f"sqlite:///{db}"), SystemClock())
                secret = repo.create("bench", "internal", credit_micros=10**12)[1]
                repo.engine.dispose()
                print(
                    f"\nimagegate --workers {workers}, provenance {args.provenance}\n"
                    f"{'payload':<12} {'conns':>5} | {'direct req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | "
                    f"{'imagegate req/s':>15} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} | {'ratio':>5} "
                    f"{'+p50 ms':>7}"
                )
                for name, (fake, model) in fakes.items():
                    payload = json.dumps({**request, "model": model}).encode()
                    for conns in levels:
                        # The image-sized runs write GBs of images: flush them before the next run.
                        os.sync()
                        direct = wrk(
                            fake + "/images/generations", UPSTREAM_KEY, payload, conns, args.duration
                        )
                        os.sync()
                        relay = wrk(base + "/v1/images/generations", secret, payload, conns, args.duration)
                        print(
                            f"{name:<12} {conns:>5} | "
                            f"{direct.rps:>12.1f} {direct.p50_ms:>7.2f} {direct.p99_ms:>7.2f} | "
                            f"{relay.rps:>15.1f} {relay.p50_ms:>7.2f} {relay.p99_ms:>7.2f} "
                            f"{relay.non_2xx + relay.errors:>7} | "
                            f"{relay.rps / direct.rps:>5.2f} {relay.p50_ms - direct.p50_ms:>7.2f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
