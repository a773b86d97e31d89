"""`imagegate batch --async` as a user runs it: every job submitted, then collected; killed after
its submissions and run again (against a server that now runs jobs), it polls the jobs it had
submitted, and the server ends up with exactly one job per batch item."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer, make_settings, run_server

CLI = [sys.executable, "-m", "imagegate.cli"]
JOBS_FILE = ".imagegate-batch-jobs.json"


def client_env(live: LiveServer, secret: str, home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGATE_", "OPENAI_"))}
    return {
        **base,
        "IMAGEGATE_API_KEY": secret,
        "IMAGEGATE_BASE_URL": live.api_base,
        "IMAGEGATE_HOME": str(home),
        "COLUMNS": "200",
    }


def jobs_of(live: LiveServer, secret: str) -> list[dict[str, Any]]:
    page = httpx.get(
        live.api_base + "/images/jobs", params={"limit": 100}, headers={"Authorization": f"Bearer {secret}"}
    ).json()
    assert not page["has_more"]
    return page["data"]  # type: ignore[no-any-return]


def write_jobs(path: Path, count: int) -> list[str]:
    lines = [
        {"id": f"j{i}", "prompt": f"poster {i}", "size": "256x256", "quality": "low"} for i in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return [line["id"] for line in lines]


def batch_args(jobs: Path, out: Path) -> list[str]:
    return [*CLI, "batch", str(jobs), "--out", str(out), "--async", "--poll-interval", "0.05", "--json"]


def test_batch_async_submits_everything_and_collects_the_results(server: LiveServer, tmp_path: Path) -> None:
    secret = server.new_key("cli-batch-async")
    env = client_env(server, secret, tmp_path / "home")
    ids = write_jobs(tmp_path / "jobs.jsonl", 3)
    out = tmp_path / "out"
    first = subprocess.run(
        batch_args(tmp_path / "jobs.jsonl", out), env=env, capture_output=True, text=True, timeout=90
    )
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["done"], summary["failed"], summary["jobs_file"]) == (3, 0, str(out / JOBS_FILE))
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i}.png" for i in ids]
    mapped = json.loads((out / JOBS_FILE).read_text())["jobs"]
    listed = jobs_of(server, secret)
    assert sorted(mapped) == ids and {v["job"] for v in mapped.values()} == {j["id"] for j in listed}
    assert all(j["status"] == "completed" for j in listed)
    human = subprocess.run(
        batch_args(tmp_path / "jobs.jsonl", out)[:-1], env=env, capture_output=True, text=True, timeout=90
    )
    assert human.returncode == 0 and "done 3/3 (resumed 3)" in human.stdout
    assert len(jobs_of(server, secret)) == 3


def test_batch_async_killed_after_submitting_resumes_without_submitting_again(tmp_path: Path) -> None:
    data, out, jobs = tmp_path / "data", tmp_path / "out", tmp_path / "jobs.jsonl"
    ids = write_jobs(jobs, 4)
    with run_server(make_settings(data, job_runners=0)) as idle:  # accepts jobs, runs none
        secret = idle.new_key("cli-batch-killed")
        cli = subprocess.Popen(
            batch_args(jobs, out),
            env=client_env(idle, secret, tmp_path / "home"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while len(_mapped(out)) < len(ids):
                assert cli.poll() is None, "the CLI ended while its jobs were queued"
                assert time.monotonic() < deadline, "the CLI did not submit every job"
                time.sleep(0.05)
        finally:
            cli.kill()
            cli.wait(timeout=10)
        queued = jobs_of(idle, secret)
        assert len(queued) == len(ids) and all(j["status"] == "queued" for j in queued)
    # A kill between the server's 202 and the file's rewrite loses that job's line: its
    # Idempotency-Key (derived from the batch and the job's content) still finds the same job.
    state = json.loads((out / JOBS_FILE).read_text())
    lost = state["jobs"].pop("j2")
    (out / JOBS_FILE).write_text(json.dumps(state))
    with run_server(make_settings(data, job_poll_s=0.05)) as busy:
        env = client_env(busy, secret, tmp_path / "home")
        resumed = subprocess.run(batch_args(jobs, out), env=env, capture_output=True, text=True, timeout=90)
        assert resumed.returncode == 0, resumed.stderr
        listed = jobs_of(busy, secret)
    assert json.loads(resumed.stdout)["done"] == len(ids)
    assert len(listed) == len(ids) and all(j["status"] == "completed" for j in listed)  # one job per item
    assert {j["id"] for j in listed} == {j["id"] for j in queued}
    assert _mapped(out)["j2"]["job"] == lost["job"]
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i}.png" for i in ids]


def _mapped(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / JOBS_FILE).read_text())["jobs"]  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}
