"""What a C2PA manifest costs per stored image: signing time and bytes, by format and path.

Run: .venv/bin/python bench/provenance.py [--repeat 20]

A 1024x1024 picture as a provider would send it (tests/fakes/upstream.py photo_png: 1.1 MB as PNG;
JPEG quality 90; WebP quality 80) is sealed `--repeat` times by provenance/sign.py with a chain
made in a temporary directory (the default: no thumbnail), on one thread; then four threads seal
at once, to show how much of it runs outside the GIL (c2pa-rs through ctypes).

PNG is sealed both ways: `embedded` (provenance/embed.py, the default: c2pa-rs signs a manifest
chunk and never calls back into Python) and `stream` (`c2pa.Builder.sign`, which reads, seeks and
writes the image through Python stream callbacks, each taking the GIL back from whatever else runs,
the event loop in the server). `callbacks` counts those per seal (a profiled seal, not timed).
"""

from __future__ import annotations

import argparse
import functools
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

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
        credentials = load_credentials(Path(tmp))
        sealer, streaming = Sealer(credentials, "bench"), Sealer(credentials, "bench", embed_png=False)
        rows = [
            ("png", "embedded", sealer),
            ("png", "stream", streaming),
            ("jpeg", "stream", sealer),
            ("webp", "stream", sealer),
        ]
        print(f"1024x1024, {args.repeat} seals per row")
        head = f"  {'format':<6} {'path':<8} {'image KB':>9} {'+manifest B':>11} {'p50 ms':>7} {'max ms':>7}"
        print(head + f" {'4 threads: images/s':>20} {'callbacks':>9}")
        for fmt, path, by in rows:
            data = images[fmt]
            one = functools.partial(by.seal, data, fmt, origin)
            one()  # the thread's signer, made once
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                sealed = one()
                times.append((time.perf_counter() - started) * 1000)
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: one(), range(4)))  # warm each thread  # noqa: B023
                started = time.perf_counter()
                list(pool.map(lambda _: one(), range(args.repeat * 2)))  # noqa: B023
                rate = args.repeat * 2 / (time.perf_counter() - started)
            print(
                f"  {fmt:<6} {path:<8} {len(data) / 1024:>9.0f} {len(sealed) - len(data):>11} "
                f"{statistics.median(times):>7.2f} {max(times):>7.2f} {rate:>20.0f} {callbacks(one):>9}"
            )


def callbacks(one: Callable[[], bytes]) -> int:
    """How many times one seal runs c2pa-python's stream callbacks (Python code that c2pa-rs
    calls through ctypes, on this thread)."""
    names = {"read_callback", "seek_callback", "write_callback", "flush_callback"}
    count = 0

    def profile(frame: FrameType, event: str, _: object) -> None:
        nonlocal count
        count += event == "call" and frame.f_code.co_name in names

    sys.setprofile(profile)
    try:
        one()
    finally:
        sys.setprofile(None)
    return count


if __name__ == "__main__":
    main()
