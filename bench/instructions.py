"""Instructions per relayed request, counted by callgrind: a figure this VM's noise cannot move.

Run: .venv/bin/python bench/instructions.py [--requests 20,120] [--payload small|image-sized]
     [--provenance true|false]

Wall-clock figures on this VM move by ±30 % between identical runs (bench/relay.py), more than
most single changes gain. `valgrind --tool=callgrind` counts the instructions a process executes
instead, the same from run to run (Debian's valgrind package). `imagegate serve` (one worker, SQLite,
signing as configured) runs under callgrind twice, against bench/fast_upstream.py (outside
valgrind), and is sent the same requests one at a time by an httpx client (outside valgrind):
warm-up, then n1 requests in one run and n2 in the other. The difference of the two totals over
n2 - n1 is what one request costs the server, start-up and warm-up cancelled out (two runs of one
build agreed to 0.01 M). To compare two versions, run it in each (or with PYTHONPATH=<other
tree>/src). About 3 minutes. Only user-space instructions are counted: the kernel's work (system
calls, page faults, thread wake-ups) and waiting are not, so this complements the wall-clock
figures of bench/relay.py, it does not replace them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import ROOT
from relay import ADMIN, UPSTREAM_KEY, fake_upstream

from imagegate.clock import SystemClock
from imagegate.http.serve import free_port
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.services import die_with_parent

WARM_UP = 30
BODY = {"prompt": "a red fox in a blue forest", "size": "1024x1024", "quality": "medium"}


def instructions(fake: str, model: str, requests: int, provenance: str) -> int:
    """The instructions `imagegate serve` executes, from its start to its exit, having answered
    WARM_UP + `requests` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        port, out = free_port(), Path(tmp) / "callgrind.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        env |= {
            "IMAGEGATE_DATA_DIR": tmp,
            "IMAGEGATE_PORT": str(port),
            "IMAGEGATE_ADMIN_KEY": ADMIN,
            "IMAGEGATE_CREATE_INITIAL_KEY": "false",
            "IMAGEGATE_WORKERS": "1",
            "IMAGEGATE_PROVENANCE": provenance,
            "PYTHONHASHSEED": "0",  # the same dict layouts, so the same instructions, each run
        }
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        server = subprocess.Popen(
            [*command, "-m", "imagegate.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 600  # start-up under valgrind takes a minute or two
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=30).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("imagegate serve did not start under valgrind")
                time.sleep(1)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            channel = {"name": "bench", "base_url": fake, "api_key": UPSTREAM_KEY, "models": [model]}
            httpx.post(base + "/admin/channels", headers=admin, json=channel, timeout=120).raise_for_status()
            repo = KeyRepo(make_engine(f"sqlite:///{tmp}/imagegate.db"), SystemClock())
            secret = repo.create("bench", "internal", credit_micros=10**12)[1]
            repo.engine.dispose()
            with httpx.Client(base_url=base, timeout=120) as client:
                for _ in range(WARM_UP + requests):
                    answer = client.post(
                        "/v1/images/generations",
                        headers={"Authorization": f"Bearer {secret}"},
                        json={**BODY, "model": model},
                    )
                    answer.raise_for_status()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=600)
        for line in out.read_text().splitlines():  # "totals: <Ir>" (or "summary:")
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
        raise RuntimeError("callgrind wrote no totals")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", default="20,120", help="n1,n2: requests counted in each run")
    parser.add_argument("--payload", default="small", choices=["small", "image-sized"])
    parser.add_argument("--provenance", default="true", help="false: store images without a C2PA manifest")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    n1, n2 = (int(n) for n in args.requests.split(","))
    model = "gpt-image-1-mini" if args.payload == "small" else "gpt-image-1"
    with fake_upstream(0 if args.payload == "small" else 1024) as fake:
        first = instructions(fake, model, n1, args.provenance)
        second = instructions(fake, model, n2, args.provenance)
    per_request = (second - first) / (n2 - n1)
    print(
        f"{args.payload} relayed request, provenance {args.provenance}: "
        f"{per_request / 1e6:.2f} M instructions (callgrind; {n1} requests: {first:,}; {n2}: {second:,})"
    )


if __name__ == "__main__":
    main()
