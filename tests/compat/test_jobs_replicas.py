"""Two replicas sharing PostgreSQL, Redis and a bucket (moto's S3 server on loopback), each with
a data directory of its own: replica A only accepts jobs (no runners), replica B runs them, the
uploads of A's edit jobs included; each serves the other's jobs and image URLs, and a job is run
once however many runners look for work."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.imaging import png
from tests.services import AWS_TEST_ENV, Process, spawn_server

ADMIN = "admin-for-the-replica-jobs"
BODY = {"model": "gpt-image-1", "prompt": "a harbour at dawn", "size": "256x256", "quality": "low"}


def job(live: Process, secret: str, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{live.api_base}/images/jobs/{job_id}", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_replica_b_runs_replica_as_jobs_once_and_serves_its_urls(
    tmp_path: Path, postgres_url: str, redis_url: str, s3_endpoint: str, bucket: str
) -> None:
    shared = {
        **AWS_TEST_ENV,
        "IMAGEGATE_BLOB_STORE": f"s3://{bucket}/jobs",
        "IMAGEGATE_S3_ENDPOINT_URL": s3_endpoint,
        "IMAGEGATE_DATABASE_URL": postgres_url,
        "IMAGEGATE_REDIS_URL": redis_url,
        "IMAGEGATE_REDIS_PREFIX": f"jobs-{tmp_path.name}:",
        "IMAGEGATE_ADMIN_KEY": ADMIN,
        "IMAGEGATE_URL_SECRET": "a-url-secret-both-replicas-share",
        "IMAGEGATE_SECRET_KEY": "ab" * 32,
        "IMAGEGATE_JOB_POLL_S": "0.05",
    }
    with (
        spawn_server(tmp_path / "a", quiet=True, IMAGEGATE_JOB_RUNNERS="0", **shared) as a,
        spawn_server(tmp_path / "b", quiet=True, IMAGEGATE_JOB_RUNNERS="4", **shared) as b,
    ):
        made = httpx.post(
            a.base_url + "/admin/keys",
            json={"name": "k", "credit_usd": "10"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        secret = made.json()["secret"]
        headers = {"Authorization": f"Bearer {secret}", "Prefer": "respond-async"}
        ids = [
            httpx.post(
                a.api_base + "/images/generations", json={**BODY, "prompt": f"harbour {i}"}, headers=headers
            ).json()["id"]
            for i in range(5)
        ]
        edit = httpx.post(  # its upload is kept in the bucket by A, read from it by B
            a.api_base + "/images/edits",
            data={"prompt": "paint it blue", "size": "128x96", "quality": "low"},
            files={"image": ("in.png", png(128, 96), "image/png")},
            headers=headers,
        )
        assert edit.status_code == 202, edit.text
        ids.append(edit.json()["id"])
        deadline = time.monotonic() + 60
        while not all(job(a, secret, i)["status"] == "completed" for i in ids):
            assert time.monotonic() < deadline, [job(a, secret, i)["status"] for i in ids]
            time.sleep(0.1)
        for job_id in ids:  # either replica answers for the job, with URLs both serve
            seen_a, seen_b = job(a, secret, job_id), job(b, secret, job_id)
            assert seen_a["result"]["data"][0]["b64_json"] == seen_b["result"]["data"][0]["b64_json"]
            url = seen_a["result"]["data"][0]["url"]
            assert httpx.get(url.replace(a.base_url, b.base_url)).status_code == 200
        usage = httpx.get(b.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}).json()
    assert usage["requests"] == 6 and usage["images"] == 6  # each job ran once
    assert usage["reserved_usd"] == 0
