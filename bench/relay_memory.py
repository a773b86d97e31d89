"""Peak memory of a gateway relaying a 20 MB upload to an upstream channel.

Run: .venv/bin/python bench/relay_memory.py [--mb 20]

Starts `imagegate serve` in a subprocess (SQLite in a temporary directory) with one channel that
points at the loopback fake upstream (tests/fakes/upstream.py, run in this process), warms the
edit path up with small uploads, then posts one multipart edit whose `image` is a PNG of about
--mb megabytes. It prints the gateway process's peak resident memory (VmHWM, /proc/<pid>/status)
before and after, and the growth as a fraction of the upload. The issue's goal: growth much less
than the upload size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - the repository root on sys.path: tests.fakes, tests.services
import httpx

from imagegate.clock import SystemClock
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.fakes.upstream import FakeUpstream, noise_png, tiny_png
from tests.services import spawn_server

ADMIN = "bench-admin-key"
MB = 1024 * 1024


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def edit(base: str, secret: str, image: bytes) -> None:
    resp = httpx.post(
        base + "/v1/images/edits",
        headers={"Authorization": f"Bearer {secret}"},
        data={"model": "gpt-image-1", "prompt": "relay me", "quality": "low"},
        files={"image": ("upload.png", image, "image/png")},
        timeout=300,
    )
    resp.raise_for_status()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=20.0, help="size of the uploaded PNG in MiB")
    args = ap.parse_args()
    edge = int((args.mb * MB / 3) ** 0.5) + 1  # noise PNGs take ~3 bytes per pixel
    upload = noise_png(edge, edge)
    small = noise_png(256, 256)
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream(record_bodies=False) as fake:
        data_dir = Path(tmp)
        with spawn_server(data_dir, own_env=True, quiet=True, IMAGEGATE_ADMIN_KEY=ADMIN) as proc:
            base = proc.base_url
            admin = {"Authorization": f"Bearer {ADMIN}"}
            httpx.post(
                base + "/admin/channels",
                headers=admin,
                timeout=30,
                json={
                    "name": "fake",
                    "base_url": fake.api_base,
                    "api_key": "sk-bench-upstream",
                    "models": ["gpt-image-1"],
                },
            ).raise_for_status()
            repo = KeyRepo(make_engine(f"sqlite:///{data_dir / 'imagegate.db'}"), SystemClock())
            secret = repo.create("bench", "internal", credit_micros=10**10)[1]
            repo.engine.dispose()
            for image in (tiny_png(1, (64, 64)), small, small):  # warm the whole edit path up
                edit(base, secret, image)
            before = memory_kb(proc.pid)
            started = time.perf_counter()
            edit(base, secret, upload)
            elapsed = time.perf_counter() - started
            after = memory_kb(proc.pid)
        relayed = fake.posts("/images/edits")[-1]
        received = [line for line in relayed.body.decode("utf-8", "replace").splitlines() if "bytes>" in line]
    growth = after["VmHWM"] - before["VmHWM"]
    print(
        f"upload: {len(upload) / MB:.1f} MiB PNG ({edge}x{edge}), relayed in {elapsed:.2f} s; "
        f"upstream received image part {received[0] if received else '?'}"
    )
    print(
        f"gateway RSS before {before['VmRSS'] / 1024:.1f} MiB, "
        f"peak (VmHWM) before {before['VmHWM'] / 1024:.1f} MiB, after {after['VmHWM'] / 1024:.1f} MiB"
    )
    print(
        f"peak growth {growth / 1024:.1f} MiB = {growth * 1024 / len(upload):.2f}x the upload "
        f"(goal: much less than 1x)"
    )


if __name__ == "__main__":
    main()
