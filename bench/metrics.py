"""What metrics and JSON logs cost a request: the same relay with them off and on, side by side.

Run: .venv/bin/python bench/metrics.py [--duration 5] [--connections 1,16] [--rounds 3] [--workers 1]

One fake upstream (bench/fast_upstream.py, its own process, a small JSON body) and three `imagegate
serve` processes over it, each with its own SQLite: `IMAGEGATE_METRICS=off`, the default (`admin`:
every request counted), and the default plus `IMAGEGATE_LOG_FORMAT=json` (one access line a request,
its output discarded). `wrk` drives each in turn, round after round (the order rotates, so a noisy
neighbour spreads over all three), and the table prints each one's median requests/s and p50 over
the rounds and its ratio to `off`. With --workers 2 the servers run prometheus-client's multiprocess
mode (values in memory-mapped files).

First, in this process, what one request adds without the noise of a shared machine: the
observers' calls (Metrics.ended, the HTTP counter and histogram, the access line formatted as JSON
into a discarded stream), timed over many calls. With PROMETHEUS_MULTIPROC_DIR set (an empty
directory) that part measures the multiprocess mode's file-backed values.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _wrk import Result, wrk
from relay import ADMIN, UPSTREAM_KEY, fake_upstream

from imagegate.clock import SystemClock
from imagegate.http.logs import ACCESS, AccessLog, JsonFormatter
from imagegate.http.metrics import Metrics
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from imagegate.storage.usage import UsageRecord
from tests.services import spawn_server

MODEL = "gpt-image-1-mini"
CONFIGS = {
    "metrics off": {"IMAGEGATE_METRICS": "off"},
    "metrics on": {"IMAGEGATE_METRICS": "admin"},
    "metrics on, json logs": {"IMAGEGATE_METRICS": "admin", "IMAGEGATE_LOG_FORMAT": "json"},
}


def per_call_us(call: Callable[[], object], n: int = 20_000) -> float:
    """Microseconds a call, the best of 5 loops of `n` after a warm-up."""
    for _ in range(1000):
        call()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def micro() -> None:
    metrics = Metrics(knows_model=lambda model: model in (MODEL, "gpt-image-1"), jobs=dict)
    record = UsageRecord(
        request_id="req_0123456789abcdef01234567", key_id=7, created_at=time.time(),
        endpoint="generations", status=200, model=MODEL, engine="openai", images=1, text_in=12,
        image_out=272, cost_micros=11_000, latency_ms=6, channel="small", upstream_cost_micros=11_000,
    )  # fmt: skip

    def observe() -> None:
        metrics.ended(record, None)
        metrics.at(metrics.http_requests, "POST", "/v1/images/generations", "200").inc()
        metrics.at(metrics.http_latency, "POST", "/v1/images/generations").observe(0.006)

    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    ACCESS.addHandler(handler)
    ACCESS.setLevel(logging.INFO)
    ACCESS.propagate = False
    access = AccessLog(prompts=False)

    def log() -> None:
        access.ended(record, "a red fox")
        handler.stream.seek(0)
        handler.stream.truncate()

    mode = "multiprocess files" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "one process"
    print(f"per request, in this process ({mode}), best of 5 x 20000 calls:")
    print(f"  metrics (images request + HTTP counter and histogram) {per_call_us(observe):7.2f} us")
    print(f"  JSON access line (format + write)                     {per_call_us(log):7.2f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--connections", default="1,16", help="comma-separated connection counts")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each server per level")
    ap.add_argument("--workers", type=int, default=1, help="imagegate worker processes")
    args = ap.parse_args()
    micro()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does)")
    payload = json.dumps({"prompt": "a red fox", "size": "1024x1024", "model": MODEL}).encode()
    print(
        f"{os.cpu_count()} CPUs; imagegate --workers {args.workers}; wrk {args.duration:g} s x "
        f"{args.rounds} rounds per server and level; small upstream answers"
    )
    with tempfile.TemporaryDirectory() as tmp, fake_upstream(0) as fake, contextlib.ExitStack() as stack:
        servers: dict[str, tuple[str, str]] = {}
        for i, (name, env) in enumerate(CONFIGS.items()):
            data = Path(tmp) / str(i)
            data.mkdir()
            server = stack.enter_context(
                spawn_server(
                    data,
                    own_env=True,
                    quiet=True,
                    IMAGEGATE_ADMIN_KEY=ADMIN,
                    IMAGEGATE_WORKERS=str(args.workers),
                    **env,
                )
            )
            channel = {"name": "small", "base_url": fake, "api_key": UPSTREAM_KEY, "models": [MODEL]}
            httpx.post(
                server.base_url + "/admin/channels",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json=channel,
                timeout=30,
            ).raise_for_status()
            repo = KeyRepo(make_engine(f"sqlite:///{data / 'imagegate.db'}"), SystemClock())
            servers[name] = (server.base_url, repo.create("bench", "internal", credit_micros=10**12)[1])
            repo.engine.dispose()
        print(
            f"\n{'server':<22} {'conns':>5} | {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} | "
            f"{'vs off':>6}"
        )
        for conns in (int(c) for c in args.connections.split(",")):
            results: dict[str, list[Result]] = {name: [] for name in servers}
            names = list(servers)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    base, secret = servers[name]
                    results[name].append(
                        wrk(base + "/v1/images/generations", secret, payload, conns, args.duration)
                    )
            off = statistics.median(x.rps for x in results["metrics off"])
            for name, runs in results.items():
                rps = statistics.median(x.rps for x in runs)
                print(
                    f"{name:<22} {conns:>5} | {rps:>8.1f} {statistics.median(x.p50_ms for x in runs):>7.2f} "
                    f"{statistics.median(x.p99_ms for x in runs):>7.2f} "
                    f"{sum(x.non_2xx + x.errors for x in runs):>7} | {rps / off:>6.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
