"""`imagegate serve --workers 2` without Redis: two processes behind one port, whose rate limits
are exact together (they share <data_dir>/workers.sqlite) and whose balances are exact together
(the database), under storms of requests on fresh connections that the kernel spreads over both."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.services import Process, spawn_server

ADMIN = "admin-for-the-workers"
BODY = {"model": "gpt-image-1", "prompt": "x", "size": "256x256", "quality": "low"}
COST_MICROS = 805  # what BODY costs at the test servers' placeholder price (tests/services.py)


def workers_of(server: Process) -> list[int]:
    """The pids of the server's worker processes: its children that opened the shared file."""
    shared = str((Path(server.env["IMAGEGATE_DATA_DIR"]) / "workers.sqlite").resolve())
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent == server.proc.pid and any(
                os.readlink(f"/proc/{pid}/fd/{fd}") == shared for fd in os.listdir(f"/proc/{pid}/fd")
            ):
                found.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def storm(server: Process, secret: str, requests: int) -> Counter[int]:
    """`requests` generations at once, each on a connection of its own; their statuses."""

    def one(_: int) -> int:
        headers = {"Authorization": f"Bearer {secret}"}
        return httpx.post(
            server.api_base + "/images/generations", json=BODY, headers=headers, timeout=60
        ).status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        return Counter(pool.map(one, range(requests)))


def new_key(server: Process, **fields: object) -> str:
    made = httpx.post(
        server.base_url + "/admin/keys",
        json={"name": "k", **fields},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


def usage(server: Process, secret: str) -> dict[str, float]:
    return httpx.get(server.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}).json()  # type: ignore[no-any-return]


def test_two_workers_share_one_rate_limit_exactly(tmp_path: Path) -> None:
    with spawn_server(tmp_path, quiet=True, IMAGEGATE_WORKERS="2", IMAGEGATE_ADMIN_KEY=ADMIN) as server:
        assert len(workers_of(server)) == 2  # both workers hold the shared limits file
        secret = new_key(server, tier="internal", rpm=15, credit_usd="10")  # no other limit
        statuses = storm(server, secret, 45)
        assert statuses == {200: 15, 429: 30}  # per-process limiters let 28 through in a trial run
        assert usage(server, secret)["images"] == 15


def test_two_workers_never_overspend_a_balance(tmp_path: Path) -> None:
    with spawn_server(tmp_path, quiet=True, IMAGEGATE_WORKERS="2", IMAGEGATE_ADMIN_KEY=ADMIN) as server:
        secret = new_key(server, tier="internal", credit_usd=str(10 * COST_MICROS / 1e6))
        statuses = storm(server, secret, 30)
        assert set(statuses) <= {200, 402, 429}, statuses
        seen = usage(server, secret)
        assert seen["images"] == statuses[200] and seen["balance_usd"] >= 0
        assert round(seen["spent_usd"] * 1e6) == statuses[200] * COST_MICROS
        # What the storm's reservations held back is spendable once they settled: exactly ten in all.
        while storm(server, secret, 1)[200]:
            pass
        seen = usage(server, secret)
    assert seen["images"] == 10 and seen["balance_usd"] == 0 and seen["reserved_usd"] == 0


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    with spawn_server(tmp_path, quiet=True, IMAGEGATE_WORKERS="2") as server:
        workers = workers_of(server)
        assert len(workers) == 2
        server.proc.kill()  # SIGKILL: the supervisor cannot stop them itself
        server.proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while alive := [pid for pid in workers if os.path.exists(f"/proc/{pid}")]:
            assert time.monotonic() < deadline, f"workers {alive} still serve the port without a supervisor"
            time.sleep(0.1)
