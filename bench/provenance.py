"""What a C2PA manifest costs per stored image: signing time and bytes, by format.

Run: .venv/bin/python bench/provenance.py [--repeat 20]

A 1024x1024 picture as a provider would send it (tests/fakes/upstream.py photo_png: 1.1 MB as PNG;
JPEG quality 90; WebP quality 80) is sealed `--repeat` times by provenance/sign.py with a chain
made in a temporary directory (the default: no thumbnail), on one thread; then four threads seal
at once, to show how much of it runs outside the GIL (c2pa-rs through ctypes).
"""

from __future__ import annotations

import argparse
import functools
import io
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT  # noqa: F401 - puts the repository on sys.path
from PIL import Image

from imagegate.provenance import Origin, Sealer, load_credentials
from tests.fakes.upstream import photo_png


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    png = photo_png(1024, 1024)
    picture = Image.open(io.BytesIO(png))
    images = {"png": png}
    for fmt, options in (("jpeg", {"quality": 90}), ("webp", {"quality": 80})):
        out = io.BytesIO()
        picture.save(out, fmt.upper(), **options)
        images[fmt] = out.getvalue()
    origin = Origin("gpt-image-1", "upstream:openai")
    with tempfile.TemporaryDirectory() as tmp:
        sealer = Sealer(load_credentials(Path(tmp)), "bench")
        print(f"1024x1024, {args.repeat} seals per format")
        head = f"  {'format':<6} {'image KB':>9} {'+manifest B':>11} {'p50 ms':>7} {'max ms':>7}"
        print(head + f" {'4 threads: images/s':>20}")
        for fmt, data in images.items():
            sealer.seal(data, fmt, origin)  # the thread's signer, made once
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                sealed = sealer.seal(data, fmt, origin)
                times.append((time.perf_counter() - started) * 1000)
            one = functools.partial(sealer.seal, data, fmt, origin)
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: one(), range(4)))  # warm each thread  # noqa: B023
                started = time.perf_counter()
                list(pool.map(lambda _: one(), range(args.repeat * 2)))  # noqa: B023
                rate = args.repeat * 2 / (time.perf_counter() - started)
            print(
                f"  {fmt:<6} {len(data) / 1024:>9.0f} {len(sealed) - len(data):>11} "
                f"{statistics.median(times):>7.2f} {max(times):>7.2f} {rate:>20.0f}"
            )


if __name__ == "__main__":
    main()
