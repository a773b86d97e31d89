"""Batches as asynchronous jobs (`async_jobs=True`): everything submitted, then collected; a run
stopped after its submissions, run again, polls the jobs it had submitted instead of submitting
again, and submits afresh only a job the server cancelled or failed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.client import AsyncClient, BatchProgress, Client, JobResult
from imagegate.client.batch import JOBS_FILE_NAME, JobsFile
from tests.conftest import LiveServer, make_settings, run_server
from tests.imaging import png


def server_jobs(live: LiveServer, secret: str) -> list[dict[str, Any]]:
    """Every job of the key, newest first (through the HTTP API, not the SDK)."""
    jobs: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        page = httpx.get(
            live.api_base + "/images/jobs", params=params, headers={"Authorization": f"Bearer {secret}"}
        ).json()
        jobs += page["data"]
        if not page["has_more"]:
            return jobs
        after = page["last_id"]


def batch_jobs(tmp_path: Path) -> list[dict[str, Any]]:
    (tmp_path / "ref.png").write_bytes(png(96, 64))
    return [
        *({"id": f"tile-{i}", "prompt": f"tile {i}", "size": "256x256", "quality": "low"} for i in range(3)),
        {"id": "edit", "prompt": "make it blue", "images": [str(tmp_path / "ref.png")], "size": "96x64"},
    ]


def test_an_async_batch_submits_everything_then_collects(server: LiveServer, tmp_path: Path) -> None:
    secret = server.new_key("batch-async")
    jobs = [*batch_jobs(tmp_path), {"id": "bad", "prompt": "x", "size": "13x13"}]
    out = tmp_path / "out"
    with Client(secret, server.api_base) as client:
        first = client.batch(
            jobs, async_jobs=True, out_dir=out, results_file=out / "r.jsonl", poll_interval=0.05
        )
        assert [r.state for r in first] == ["done"] * 4 + ["failed"]
        assert first[4].error_code == "invalid_value" and first[4].server_job_id is None  # refused at once
        assert sorted(p.name for p in out.glob("*.png")) == [
            "edit.png",
            "tile-0.png",
            "tile-1.png",
            "tile-2.png",
        ]
        assert first[3].result is not None and first[3].result.image.to_pil().size == (96, 64)
        assert first.cost_usd > 0
        listed = server_jobs(server, secret)
        assert {j["id"] for j in listed} == {r.server_job_id for r in first.succeeded}
        assert all(j["status"] == "completed" for j in listed)
        state = json.loads((out / JOBS_FILE_NAME).read_text())
        assert {k: v["job"] for k, v in state["jobs"].items()} == {
            r.id: r.server_job_id for r in first.succeeded
        }
        records = [json.loads(line) for line in (out / "r.jsonl").read_text().splitlines()[1:]]
        assert {r["id"]: r.get("job_id") for r in records if r["ok"]} == {
            k: v["job"] for k, v in state["jobs"].items()
        }
        again = client.batch(
            jobs, async_jobs=True, out_dir=out, results_file=out / "r.jsonl", poll_interval=0.05
        )
    assert sum(r.resumed for r in again) == 4 and again[4].state == "failed"
    assert len(server_jobs(server, secret)) == 4  # nothing submitted twice


def test_a_stopped_async_batch_resumes_its_jobs_and_resubmits_a_cancelled_one(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    jobs = batch_jobs(tmp_path)
    options: dict[str, Any] = {"async_jobs": True, "out_dir": out, "poll_interval": 0.05, "concurrency": 2}

    async def stopped(client: AsyncClient) -> None:
        with pytest.raises(TimeoutError):  # submitted, then polling jobs that nothing runs
            await asyncio.wait_for(client.batch(jobs, **options), timeout=2.0)

    with run_server(make_settings(data, job_runners=0)) as idle:
        secret = idle.new_key("batch-stopped")

        async def first_run() -> None:
            async with AsyncClient(secret, idle.api_base) as client:
                await stopped(client)

        asyncio.run(first_run())
        submitted = json.loads((out / JOBS_FILE_NAME).read_text())["jobs"]
        assert sorted(submitted) == ["edit", "tile-0", "tile-1", "tile-2"]
        assert len(server_jobs(idle, secret)) == 4
        with Client(secret, idle.api_base) as client:
            assert client.jobs.cancel(submitted["tile-1"]["job"]).status == "cancelled"
    with run_server(make_settings(data, job_poll_s=0.05)) as busy, Client(secret, busy.api_base) as client:
        rerun = client.batch(jobs, **options)
        listed = server_jobs(busy, secret)
    assert all(r.ok for r in rerun) and not any(r.resumed for r in rerun)
    again = json.loads((out / JOBS_FILE_NAME).read_text())["jobs"]
    assert again["tile-1"]["attempt"] == 1 and again["tile-1"]["job"] != submitted["tile-1"]["job"]
    assert {k: v["job"] for k, v in again.items() if k != "tile-1"} == {
        k: v["job"] for k, v in submitted.items() if k != "tile-1"
    }
    statuses = sorted(j["status"] for j in listed)
    assert len(listed) == 5 and statuses == ["cancelled"] + ["completed"] * 4
    assert sorted(p.name for p in out.glob("*.png")) == ["edit.png", "tile-0.png", "tile-1.png", "tile-2.png"]


def test_ctrl_c_stops_a_sync_batch_that_waits_for_queued_jobs(tmp_path: Path) -> None:
    """The waits stop at their next pause (a job's wait can be hours): no thread is left polling."""

    def stop(_progress: BatchProgress, _job: JobResult) -> None:
        raise KeyboardInterrupt  # as Ctrl-C would, once the first job ended

    with run_server(make_settings(tmp_path / "data", job_runners=0)) as idle:
        secret = idle.new_key("batch-ctrl-c")
        first = threading.Timer(1.0, lambda: _cancel(idle, secret, server_jobs(idle, secret)[-1]))
        # Were the other waits not stopped, the batch would end only when these cancel its jobs.
        rescue = threading.Timer(15.0, lambda: [_cancel(idle, secret, j) for j in server_jobs(idle, secret)])
        first.start()
        rescue.start()
        started = time.monotonic()
        try:
            with Client(secret, idle.api_base) as client, pytest.raises(KeyboardInterrupt):
                options: dict[str, Any] = {"out_dir": tmp_path / "out", "poll_interval": 0.05}
                client.batch(["a", "b", "c"], async_jobs=True, on_progress=stop, **options)
        finally:
            first.cancel()
            rescue.cancel()
        assert time.monotonic() - started < 10
        statuses = sorted(j["status"] for j in server_jobs(idle, secret))
    assert statuses == ["cancelled", "queued", "queued"]
    assert len(json.loads((tmp_path / "out" / JOBS_FILE_NAME).read_text())["jobs"]) == 3


def _cancel(live: LiveServer, secret: str, job: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {secret}"}
    httpx.post(f"{live.api_base}/images/jobs/{job['id']}/cancel", headers=auth)


def test_a_large_jobs_file_is_written_at_most_once_a_second_and_at_the_end(tmp_path: Path) -> None:
    jobs_file = JobsFile(tmp_path / "jobs.json")
    jobs_file.SLOW_WRITE_S = -1.0  # every write counts as slow
    entries: dict[str, dict[str, Any]] = {"a": {"job": "imgjob_a"}}
    jobs_file.save("batch", entries)
    assert jobs_file.load() == ("batch", {"a": {"job": "imgjob_a"}})
    entries["b"] = {"job": "imgjob_b"}
    jobs_file.save("batch", entries)
    assert sorted(jobs_file.load()[1]) == ["a"]  # within the second
    jobs_file.flush()
    assert sorted(jobs_file.load()[1]) == ["a", "b"]
    (tmp_path / "jobs.json").write_text("{torn")
    assert jobs_file.load() == (None, {})
    assert not list(tmp_path.glob("*.tmp"))
