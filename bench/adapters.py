"""What adapting a request to a provider costs, per image at about 1024 px, against relaying the
OpenAI answer as it came (the pass-through, which only sniffs the first 16 bytes).

Run: .venv/bin/python bench/adapters.py [--repeat 5]

Part 1, in process, on one provider answer (a 1536x1024 photo-like PNG, as a provider renders the
guide's 1200x630): plan the adaptation, then each path the gateway takes after the provider
answered: pass-through; format conversion (decode and encode again); size (decode, centre-crop,
Lanczos resize to 1200x630, encode). Part 2, through a running gateway, per provider kind with a
fake server on loopback: the median latency of a 1024x1024 request (the provider's native size,
nothing adapted) and of 1200x630 (crop and resize), less the OpenAI pass-through's median: the
time each adapter adds (its translation, its answer's parsing, the adaptation).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from types import MappingProxyType

from _common import ROOT  # noqa: F401 - puts the repository on sys.path

from imagegate.domain import ImageJob
from imagegate.engines.adapt import plan
from imagegate.engines.providers import GPT_IMAGE_1, PROVIDERS
from imagegate.images import fit
from imagegate.images.encode import encode_image, sniff_format
from tests.fakes.upstream import photo_png


def timed(what: Callable[[], object], repeat: int) -> float:
    """The median wall time of `what`, in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        what()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def in_process(repeat: int) -> None:
    answer = photo_png(1536, 1024)
    job = ImageJob(
        model="gpt-image-1",
        prompt="a banner",
        width=1200,
        height=630,
        output_format="webp",
        passthrough=MappingProxyType({"prompt": "a banner", "size": "1200x630", "output_format": "webp"}),
    )
    rows = [
        ("plan (gpt-image-1, 1200x630 webp)", lambda: plan(job, GPT_IMAGE_1)),
        ("pass-through (sniff 16 bytes)", lambda: sniff_format(answer[:16])),
        ("decode 1536x1024 png", lambda: fit.decode(answer)),
    ]
    pixels = fit.decode(answer)
    fitted = fit.fit(pixels, 1200, 630)
    rows += [
        ("crop + resize to 1200x630", lambda: fit.fit(pixels, 1200, 630)),
        ("encode 1200x630 png", lambda: encode_image(fitted, "png")),
        ("encode 1200x630 webp (lossless)", lambda: encode_image(fitted, "webp")),
        ("encode 1200x630 jpeg", lambda: encode_image(fitted, "jpeg")),
        ("encode 1536x1024 jpeg (format only)", lambda: encode_image(pixels, "jpeg")),
    ]
    print(f"part 1: in process, median of {repeat} runs, one image")
    print(f"  {'step':<40} {'ms':>8}")
    for name, what in rows:
        print(f"  {name:<40} {timed(what, repeat):>8.2f}")
    size_png = len(encode_image(fitted, "png"))
    print(f"  (answer {len(answer) / 1e6:.2f} MB png; fitted png {size_png / 1e6:.2f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    in_process(args.repeat)
    print(f"\nprovider kinds: {', '.join(PROVIDERS)}")
    _ = io  # part 2 lands with the providers' fakes


if __name__ == "__main__":
    main()
