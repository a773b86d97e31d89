"""Channel keys sealed at rest and never shown, invalid channels refused, channels managed from
the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import select

from imagegate.storage.db import make_engine
from imagegate.storage.tables import channels
from tests.compat.relay.harness import (
    CHANNEL_KEYS,
    CHANNEL_PRICES,
    PRIMARY_KEY,
    SECONDARY_KEY,
    Admin,
    generate,
    sdk,
    wait_for,
)
from tests.conftest import LiveServer
from tests.fakes.upstream import FakeUpstream


def test_channel_keys_are_sealed_at_rest_and_never_shown(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    created = admin.add("secret", primary, PRIMARY_KEY, prices=CHANNEL_PRICES)
    assert created["api_key"] == "…" + PRIMARY_KEY[-4:]
    patched = admin.http.patch(
        f"/admin/channels/{created['id']}", json={"api_key": SECONDARY_KEY, "weight": 3}
    )
    assert patched.status_code == 200 and patched.json()["weight"] == 3
    texts = [
        json.dumps(created),
        patched.text,
        admin.http.get("/admin/channels").text,
        admin.http.get(f"/admin/channels/{created['id']}").text,
    ]
    for key in CHANNEL_KEYS:
        assert not any(key in text or key[-12:] in text for text in texts)
    engine = make_engine(gateway.settings.resolved_database_url)
    with engine.connect() as conn:
        sealed = conn.execute(select(channels.c.api_key_sealed)).scalars().all()
    engine.dispose()
    assert sealed and all(s.startswith("v1:") and SECONDARY_KEY not in s for s in sealed)
    # The files themselves, read by another process: closing a descriptor of the database file in this
    # one (where the gateway runs) would drop SQLite's locks.
    files = [str(p) for p in gateway.settings.data_dir.glob("imagegate.db*")]
    scan = subprocess.run(
        ["grep", "-c", "-a", "-F", "-e", PRIMARY_KEY, "-e", SECONDARY_KEY, *files],
        capture_output=True,
        text=True,
    )
    assert scan.returncode == 1, scan.stdout  # no match in any file
    with sdk(gateway, gateway.new_key("secret")) as client:
        generate(client)
    assert primary.posts()[0].bearer == SECONDARY_KEY  # the new key, unsealed for the request only


def test_invalid_channels_are_refused_with_400(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    base = {"name": "bad", "base_url": primary.api_base, "api_key": PRIMARY_KEY, "models": ["gpt-image-1"]}
    for change in (
        {"prices": {"text_in_per_1m": -1, "image_in_per_1m": 0, "image_out_per_1m": 0}},
        {"prices": {"per_1m": 5}},
        {"base_url": "ftp://example.com"},
        {"models": []},
        {"weight": 0},
        {"model_map": {"gpt-image-1": 5}},
    ):
        resp = admin.http.post("/admin/channels", json={**base, **change})
        assert resp.status_code == 400, (change, resp.text)
        assert PRIMARY_KEY not in resp.text
    resp = admin.http.post("/admin/channels", json=base)
    assert resp.status_code == 201
    assert admin.http.post("/admin/channels", json=base).status_code == 409
    patch = admin.http.patch(f"/admin/channels/{resp.json()['id']}", json={"prices": {"per_1m": 5}})
    assert patch.status_code == 400, patch.text
    assert httpx.get(gateway.base_url + "/admin/channels").status_code == 401


def test_channels_managed_from_the_cli(gateway: LiveServer, primary: FakeUpstream, admin: Admin) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env["IMAGEGATE_DATA_DIR"] = str(gateway.settings.data_dir)
    name = f"cli-{uuid.uuid4().hex[:6]}"

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "imagegate.cli", "channels", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def engine() -> str:
        resp = httpx.get(
            gateway.api_base + "/models/gpt-image-1", headers={"Authorization": f"Bearer {secret}"}
        )
        return str(resp.json()["engine"])

    secret = gateway.new_key("cli")
    out = cli(
        "add",
        "--name",
        name,
        "--base-url",
        primary.api_base,
        "--api-key",
        PRIMARY_KEY,
        "--models",
        "gpt-image-1",
        "--map",
        "gpt-image-1=cli-upstream-model",
        "--priority",
        "3",
    )
    assert name in out and PRIMARY_KEY not in out
    listed = cli("list", "--json")
    [row] = [c for c in json.loads(listed) if c["name"] == name]
    assert row["model_map"] == {"gpt-image-1": "cli-upstream-model"} and row["priority"] == 3
    assert PRIMARY_KEY not in listed and PRIMARY_KEY[-12:] not in listed
    assert PRIMARY_KEY[-12:] not in cli("list")
    wait_for(lambda: engine() == f"upstream:{name}", what="the gateway to load the new channel")
    with sdk(gateway, secret) as client:
        generate(client)
    [post] = primary.posts()
    assert post.bearer == PRIMARY_KEY and post.json()["model"] == "cli-upstream-model"
    cli("remove", name)
    wait_for(lambda: engine() == "placeholder", what="the gateway to drop the channel")
