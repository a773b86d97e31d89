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
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
from _common import ROOT  # noqa: F401 - puts the repository on sys.path

from imagegate.domain import ImageJob
from imagegate.engines.adapt import plan
from imagegate.engines.providers import GPT_IMAGE_1
from imagegate.images import fit
from imagegate.images.encode import encode_image, sniff_format
from tests.fakes.azure import FakeAzure
from tests.fakes.gemini import FakeGemini
from tests.fakes.seedream import FakeArk
from tests.fakes.upstream import FakeUpstream, photo_png
from tests.fakes.vertex import FakeVertex
from tests.fakes.xai import FakeXai
from tests.services import spawn_server


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


KEY = "sk-bench-provider-key-0123456789"
ADMIN = "bench-admin"


def fakes() -> list[tuple[str, Any, str, dict[str, Any]]]:
    """(kind, fake server, the provider's model, channel fields), one per provider kind."""
    openai_fake = FakeUpstream()
    openai_fake.image = photo_png(1024, 1024)  # an answer the size a provider renders, as the others'
    azure = FakeAzure(KEY, {"img": "gpt-image-1"})
    azure.image = photo_png(1024, 1024)
    return [
        ("openai", openai_fake, "gpt-image-1", {}),
        ("azure", azure, "gpt-image-1", {"options": {"deployment": "img"}}),
        ("gemini", FakeGemini(valid_keys={KEY}), "gemini-2.5-flash-image", {}),
        ("vertex", FakeVertex(keys={KEY}), "imagen-4.0-generate-001", {}),
        ("seedream", FakeArk(KEY), "doubao-seedream-4-0-250828", {}),
        ("xai", FakeXai(KEY), "grok-imagine-image", {}),
    ]


def p50(times: list[float]) -> float:
    return statistics.median(times) * 1000


def through_gateway(repeat: int) -> None:
    """Each provider's fake, called through imagegate and directly with the very request the
    gateway sent it (same path, headers and body): the difference is what the gateway adds."""
    rows = []
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        providers = fakes()
        for _, fake, _, _ in providers:
            stack.enter_context(fake)
        server = stack.enter_context(
            spawn_server(
                Path(tmp),
                own_env=True,
                quiet=True,
                IMAGEGATE_ADMIN_KEY=ADMIN,
                IMAGEGATE_CHANNEL_REFRESH_S="0.2",
            )
        )
        admin = {"Authorization": f"Bearer {ADMIN}"}
        secret = httpx.post(
            server.base_url + "/admin/keys",
            json={"name": "b", "credit_usd": "1000", "tier": "internal"},
            headers=admin,
        ).json()["secret"]
        with httpx.Client(timeout=60) as http:
            for kind, fake, model, fields in providers:
                name = f"bench-{kind}"
                body = {
                    "name": name,
                    "provider": kind,
                    "base_url": fake.api_base,
                    "api_key": KEY,
                    "models": [name],
                }
                resp = http.post(
                    server.base_url + "/admin/channels",
                    json={**body, "model_map": {name: model}, **fields},
                    headers=admin,
                )
                assert resp.status_code == 201, resp.text
                for size in ("1024x1024", "1200x630"):
                    params = {
                        "model": name,
                        "prompt": "a lighthouse at dusk",
                        "size": size,
                        "output_format": "png",
                    }
                    via, adapted = [], ""
                    for _ in range(repeat + 1):
                        started = time.perf_counter()
                        answer = http.post(
                            server.api_base + "/images/generations",
                            json=params,
                            headers={"Authorization": f"Bearer {secret}"},
                        )
                        via.append(time.perf_counter() - started)
                        assert answer.status_code == 200, answer.text
                        adapted = answer.headers.get("x-imagegate-adapted", "")
                    sent = [r for r in fake.received if r.method == "POST"][-1]
                    direct = []
                    for _ in range(repeat + 1):
                        started = time.perf_counter()
                        replay = http.post(
                            fake.base_url + sent.path,
                            content=sent.body,
                            headers={
                                k: v
                                for k, v in sent.headers.items()
                                if k.lower() not in ("host", "content-length")
                            },
                        )
                        direct.append(time.perf_counter() - started)
                        assert replay.status_code == 200, replay.text
                    rows.append((kind, size, p50(direct[1:]), p50(via[1:]), adapted or "-"))
    print(f"\npart 2: through imagegate vs the same request sent to the fake directly, median of {repeat}")
    print(
        f"  {'provider':<9} {'size':<10} {'direct ms':>9} {'via ms':>8} {'added ms':>9}  "
        f"{'vs openai':>7}  adapted"
    )
    base = {size: added for kind, size, d, v, _ in rows if kind == "openai" for added in [v - d]}
    for kind, size, direct_ms, via_ms, adapted in rows:
        added = via_ms - direct_ms
        print(
            f"  {kind:<9} {size:<10} {direct_ms:>9.1f} {via_ms:>8.1f} {added:>9.1f}  "
            f"{added - base[size]:>+7.1f}  {adapted}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    in_process(args.repeat)
    through_gateway(args.repeat)


if __name__ == "__main__":
    main()
