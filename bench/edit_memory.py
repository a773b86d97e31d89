"""Peak memory of a gateway serving a 16-image edit locally, and refusing decompression bombs.

Run: .venv/bin/python bench/edit_memory.py [--edge 1024]

Starts `imagegate serve` in a subprocess (SQLite in a temporary directory; the placeholder engine,
which decodes every input image), warms the edit path up, then posts (1) one multipart edit of 16
noise PNGs of --edge x --edge and (2) an edit of four 7000x7000 PNGs that compress to about 160 KB
each (decompression bombs: each within the per-image limit, together over the request's pixel
budget). It prints the gateway process's peak resident memory (VmHWM) after each step.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _common  # noqa: F401 - the repository root on sys.path: tests.fakes, tests.services
import httpx
from PIL import Image

from imagegate.clock import SystemClock
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.fakes.upstream import noise_png
from tests.imaging import encode
from tests.services import spawn_server

MB = 1024 * 1024


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def edit(base: str, secret: str, images: list[bytes]) -> int:
    files = [("image[]", (f"i{i}.png", data, "image/png")) for i, data in enumerate(images)]
    resp = httpx.post(
        base + "/v1/images/edits",
        headers={"Authorization": f"Bearer {secret}"},
        data={"model": "gpt-image-1", "prompt": "a collage", "quality": "low", "size": "1024x1024"},
        files=files,
        timeout=300,
    )
    return resp.status_code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", type=int, default=1024, help="edge of each of the 16 input images")
    args = ap.parse_args()
    sixteen = [noise_png(args.edge, args.edge, seed=i) for i in range(16)]
    bomb = encode(Image.new("L", (7000, 7000)))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        with spawn_server(data_dir, own_env=True, quiet=True) as proc:
            repo = KeyRepo(make_engine(f"sqlite:///{data_dir / 'imagegate.db'}"), SystemClock())
            secret = repo.create("bench", "internal", credit_micros=10**10)[1]
            repo.engine.dispose()
            for _ in range(2):
                edit(proc.base_url, secret, [noise_png(256, 256)])  # warm the edit path up
            warm = peak_mib(proc.pid)
            status16 = edit(proc.base_url, secret, sixteen)
            after16 = peak_mib(proc.pid)
            status_bombs = edit(proc.base_url, secret, [bomb] * 4)
            after_bombs = peak_mib(proc.pid)
    upload = sum(map(len, sixteen)) / MB
    print(
        f"16 images of {args.edge}x{args.edge} ({upload:.1f} MiB of PNG, "
        f"{16 * args.edge * args.edge / 1e6:.1f} M pixels), served locally: HTTP {status16}"
    )
    print(
        f"gateway peak RSS (VmHWM): warm {warm:.1f} MiB, after the 16-image edit {after16:.1f} MiB "
        f"(+{after16 - warm:.1f} MiB)"
    )
    print(
        f"4 bombs of 7000x7000 ({len(bomb) / 1024:.0f} KiB each): HTTP {status_bombs}, "
        f"peak after {after_bombs:.1f} MiB (+{after_bombs - after16:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
