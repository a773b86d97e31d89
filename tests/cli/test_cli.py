"""The `imagegate` command as a user runs it: keys, and serve on a fresh data directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from imagegate.cli.stores import open_stores
from imagegate.config import Settings
from imagegate.http.serve import free_port

CLI = [sys.executable, "-m", "imagegate.cli"]


def run(
    args: list[str], data_dir: Path | None, cwd: Path | None = None, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_") and k != "COLUMNS"}
    if data_dir is not None:
        env["IMAGEGATE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        CLI + args, env={**env, **env_vars}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def create_database(data_dir: Path) -> None:
    """What `imagegate serve` does first on a new data directory (the only command that may)."""
    open_stores(Settings(data_dir=data_dir), create=True).close()


def test_keys_credits_and_usage_commands(tmp_path: Path) -> None:
    create_database(tmp_path)
    created = run(
        ["keys", "create", "--name", "ci", "--tier", "tier1", "--credit", "12.5", "--rpm", "7"], tmp_path
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"sk-ig-[A-Za-z0-9]{40}", secret)
    listed = json.loads(run(["keys", "list", "--json"], tmp_path).stdout)
    assert [(k["name"], k["prefix"], k["tier"], k["balance_usd"], k["limits"]["rpm"]) for k in listed] == [
        ("ci", secret[:12], "tier1", 12.5, 7)
    ]
    human = run(["keys", "list"], tmp_path, COLUMNS="200").stdout
    assert "ci" in human and secret[:12] in human and secret not in human
    assert run(["credits", "add", secret[:12], "2.25", "--note", "invoice 1"], tmp_path).returncode == 0
    updated = run(["keys", "update", secret[:12], "--tier", "tier2", "--multiplier", "1.1"], tmp_path)
    assert updated.returncode == 0, updated.stderr
    view = json.loads(run(["keys", "list", "--json"], tmp_path).stdout)[0]
    assert view["balance_usd"] == 14.75 and view["tier"] == "tier2" and view["multiplier"] == 1.1
    assert json.loads(run(["usage", "--json"], tmp_path).stdout) == []
    revoked = run(["keys", "revoke", secret[:12]], tmp_path)
    assert revoked.returncode == 0
    assert json.loads(run(["keys", "list", "--json"], tmp_path).stdout)[0]["status"] == "revoked"
    missing = run(["keys", "revoke", "nope"], tmp_path)
    assert missing.returncode == 1 and "No key 'nope'" in missing.stderr
    bad_tier = run(["keys", "create", "--name", "x", "--tier", "gold"], tmp_path)
    assert bad_tier.returncode == 1 and "Unknown tier 'gold'" in bad_tier.stderr
    assert run(["credits", "add", "1", "-3"], tmp_path).returncode != 0


def test_only_serve_creates_a_database(tmp_path: Path) -> None:
    """Run from another directory, a command must not make a new empty ./imagegate-data (whose keys
    the running server would never know): it refuses and says where it looked."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (
        ["keys", "list"],
        ["keys", "create", "--name", "lost"],
        ["credits", "add", "1", "2"],
        ["usage"],
        ["channels", "list"],
    ):
        done = run(args, None, cwd=elsewhere)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert f"no imagegate database at {elsewhere / 'imagegate-data' / 'imagegate.db'}" in done.stderr
        assert "relative to" in done.stderr and "IMAGEGATE_DATA_DIR" in done.stderr
        assert not (elsewhere / "imagegate-data").exists(), args
    database_url = f"sqlite:///{tmp_path / 'nowhere.db'}"
    by_url = run(["keys", "list"], None, cwd=elsewhere, IMAGEGATE_DATABASE_URL=database_url)
    assert by_url.returncode == 1 and "IMAGEGATE_DATABASE_URL" in by_url.stderr
    assert not (tmp_path / "nowhere.db").exists()
    create_database(elsewhere / "imagegate-data")  # the server's, once it ran there
    assert run(["keys", "create", "--name", "found"], None, cwd=elsewhere).returncode == 0


def test_tables_are_whole_when_not_on_a_terminal(tmp_path: Path) -> None:
    create_database(tmp_path)
    name = "a key whose name is long enough to push the table past eighty columns"
    secret = run(["keys", "create", "--name", name], tmp_path).stdout.strip().splitlines()[-1]
    listed = run(["keys", "list"], tmp_path)  # stdout is a pipe, and no COLUMNS
    rows = [line for line in listed.stdout.splitlines() if secret[:12] in line]
    assert len(rows) == 1 and name in rows[0] and f"{secret[:12]}…" in rows[0], listed.stdout
    assert "tier" in listed.stdout and "status" in listed.stdout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    port = free_port()
    env = {**os.environ, "IMAGEGATE_DATA_DIR": str(tmp_path), "IMAGEGATE_PORT": str(port)}
    proc = subprocess.Popen(
        CLI + ["serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        output = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
        yield base, output, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_on_a_new_database_prints_one_working_key(served: tuple[str, str, Path]) -> None:
    _, output, data_dir = served
    secrets = re.findall(r"sk-ig-[A-Za-z0-9]{40}", output)
    assert secrets, output
    assert "curl" in output and "OpenAI(base_url=" in output
    assert "placeholder" in output  # the start-up log says plainly what serves the models
    assert (data_dir / "imagegate.db").exists()
    assert f"database: {(data_dir / 'imagegate.db').resolve()}" in output  # where the other commands look
    assert f"trust anchor: {data_dir / 'provenance' / 'ca.pem'}" in output  # for readers of the manifests
    # Start again on the same database: it works with the printed key and prints no new one.
    port = free_port()
    env = {**os.environ, "IMAGEGATE_DATA_DIR": str(data_dir), "IMAGEGATE_PORT": str(port)}
    proc = subprocess.Popen(
        CLI + ["serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                httpx.get(base + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with openai.OpenAI(base_url=base + "/v1", api_key=secrets[0], max_retries=0) as client:
            result = client.images.generate(model="gpt-image-1", prompt="hello", quality="low")
            assert result.data and result.data[0].b64_json
    finally:
        proc.terminate()
        second = proc.communicate(timeout=20)[0]
    assert not re.findall(r"sk-ig-[A-Za-z0-9]{40}", second)
