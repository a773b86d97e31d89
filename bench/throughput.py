"""Images per second: the placeholder engine alone, encoding, and the whole HTTP path.

Run: .venv/bin/python bench/throughput.py [--requests N] [--concurrency C]
Prints one table; every figure is measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx

from imagegate.clock import SystemClock
from imagegate.config import Settings
from imagegate.domain import FinalImage, ImageJob
from imagegate.engines.placeholder import PlaceholderEngine
from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from imagegate.images.encode import encode_image
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo

FORMATS = ("png", "jpeg", "webp")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def render_once(seed: int) -> FinalImage:
    job = ImageJob(
        model="gpt-image-1", prompt="a red fox in a blue forest, watercolor", quality="medium", seed=seed
    )

    async def go() -> FinalImage:
        return [e async for e in PlaceholderEngine().run(job) if isinstance(e, FinalImage)][0]

    return anyio.run(go)


def row(name: str, samples: list[float], per_call: int = 1) -> None:
    med = statistics.median(samples)
    p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
    print(f"{name:<44} {per_call / med:8.1f} img/s   median {med * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms")


def http_path(base: str, key: str, fmt: str, response_format: str, n: int, conc: int) -> float:
    body = {
        "model": "gpt-image-1",
        "prompt": "a red fox in a blue forest",
        "size": "1024x1024",
        "quality": "medium",
        "output_format": fmt,
        "response_format": response_format,
    }
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        c.post("/v1/images/generations", json=body).raise_for_status()  # warm-up

        def one(i: int) -> None:
            c.post("/v1/images/generations", json={**body, "seed": i}).raise_for_status()

        t = time.perf_counter()
        with ThreadPoolExecutor(conc) as pool:
            list(pool.map(one, range(n)))
        return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()

    print("== engine and encoder, 1024x1024 medium, one thread ==")
    render_once(0)  # loads the font
    seeds = iter(range(1, 10_000))
    row("placeholder render (engine.run)", timed(lambda: render_once(next(seeds)), 20))
    image = render_once(1).image
    assert image is not None
    for fmt in FORMATS:
        row(f"encode {fmt}", timed(lambda fmt=fmt: encode_image(image, fmt, compression=90), 20))

    print(
        f"\n== HTTP path: POST /v1/images/generations, {args.requests} requests, "
        f"{args.concurrency} concurrent clients =="
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), create_initial_key=False)
        with serve_in_thread(create_app(settings)) as base:
            repo = KeyRepo(make_engine(settings.resolved_database_url), SystemClock())
            key = repo.create("bench", tier="internal", credit_micros=10**12)[1]
            for fmt in FORMATS:
                for rf in ("b64_json", "url"):
                    for conc in (1, args.concurrency):
                        ips = http_path(base, key, fmt, rf, args.requests, conc)
                        print(f"{fmt:<5} {rf:<9} concurrency {conc:<3} {ips:8.1f} img/s")


if __name__ == "__main__":
    main()
