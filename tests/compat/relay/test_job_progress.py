"""An async job's progress: the images its run has made so far, as any replica reads them from the
job's row while it runs (GET /v1/images/jobs/{id}), then all of them once it completed."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.compat.relay.harness import PRIMARY_KEY, Admin
from tests.conftest import LiveServer
from tests.fakes.upstream import FakeUpstream


def job(live: LiveServer, secret: str, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{live.api_base}/images/jobs/{job_id}", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_a_running_job_reports_the_images_made_so_far(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("one-at-a-time", primary, PRIMARY_KEY, capabilities={"max_n": 1})  # n=3: three calls
    primary.push(("ok",), ("ok",), ("sleep", 3.0))  # the third call to arrive takes its time
    secret = gateway.new_key("progress")
    submitted = httpx.post(
        gateway.api_base + "/images/generations",
        json={"model": "gpt-image-1", "prompt": "three foxes", "size": "1024x1024", "n": 3},
        headers={"Authorization": f"Bearer {secret}", "Prefer": "respond-async"},
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    seen = []
    deadline = time.monotonic() + 30
    while (now := job(gateway, secret, job_id))["status"] != "completed":
        assert time.monotonic() < deadline and now["status"] in ("queued", "in_progress"), now
        if now["status"] == "in_progress":
            seen.append(now["progress"]["images_completed"])
            assert now["progress"]["images"] == 3
        time.sleep(0.05)
    assert 2 in seen and seen == sorted(seen)  # two made while the third was still being drawn
    assert now["progress"] == {"images_completed": 3, "images": 3}
    assert len(now["result"]["data"]) == 3
