"""A job whose server dies mid-run is run again by the next server once its lease has passed, and
charged once; a job that cannot run again fails and is refunded in full. Real `imagegate serve`
processes (killed with SIGKILL), one SQLite database, and a fake provider on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.services import Process, spawn_server

ADMIN = "admin-for-the-restart-tests"
ENV = {
    "IMAGEGATE_ADMIN_KEY": ADMIN,
    "IMAGEGATE_JOB_LEASE_S": "1",
    "IMAGEGATE_JOB_POLL_S": "0.05",
    "IMAGEGATE_CHANNEL_REFRESH_S": "0.2",
}
BODY = {"model": "gpt-image-1", "prompt": "a lighthouse", "size": "1024x1024", "quality": "low"}


def admin(live: Process, method: str, path: str, **body: Any) -> dict[str, Any]:
    resp = httpx.request(
        method, live.base_url + path, json=body or None, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert resp.status_code in (200, 201), resp.text
    return resp.json()  # type: ignore[no-any-return]


def job_status(live: Process, secret: str, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{live.api_base}/images/jobs/{job_id}", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def wait(what: str, condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("max_attempts", [3, 1])
def test_a_job_outlives_its_server_and_is_charged_once(tmp_path: Path, max_attempts: int) -> None:
    env = {**ENV, "IMAGEGATE_JOB_MAX_ATTEMPTS": str(max_attempts)}
    with FakeUpstream() as fake:
        fake.push(("sleep", 60))  # the first run: the server is killed while the provider works
        with spawn_server(tmp_path, quiet=True, **env) as first:
            admin(
                first,
                "POST",
                "/admin/channels",
                name="p",
                base_url=fake.api_base,
                api_key="sk-fake-0123456789",
                models=["gpt-image-1"],
            )
            secret = admin(first, "POST", "/admin/keys", name="k", credit_usd="10")["secret"]
            before = httpx.get(
                first.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}
            ).json()
            resp = httpx.post(
                first.api_base + "/images/generations",
                json=BODY,
                headers={"Authorization": f"Bearer {secret}", "Prefer": "respond-async"},
            )
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            wait("the provider to get the first run", lambda: len(fake.posts("/images/generations")) == 1)
            first.proc.kill()
        with spawn_server(tmp_path, quiet=True, **env) as second:
            wait(
                "the job to end",
                lambda: job_status(second, secret, job_id)["status"] in ("completed", "failed"),
            )
            job = job_status(second, secret, job_id)
            usage = httpx.get(
                second.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}
            ).json()
    assert before["balance_usd"] == 10.0
    if max_attempts == 1:  # it may not run again: failed, and nothing charged
        assert job["status"] == "failed" and "too many times" in job["error"]["message"]
        assert len(fake.posts("/images/generations")) == 1
        assert usage["balance_usd"] == 10.0 and usage["spent_usd"] == 0
        return
    assert job["status"] == "completed" and len(job["result"]["data"]) == 1
    assert len(fake.posts("/images/generations")) == 2  # run again by the second server
    assert usage["spent_usd"] > 0 and usage["reserved_usd"] == 0  # settled, nothing still held
    assert round((usage["balance_usd"] + usage["spent_usd"]) * 1e6) == 10_000_000  # charged once
    assert usage["requests"] == 1  # one usage record: the run that finished
