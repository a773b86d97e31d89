"""A channel whose key was sealed with another secret key (hardening): every replica failed to
reload channels and served its model with the placeholder, and a new replica refused to start.
It is now skipped with a clear error, the other channels serve, and its model answers 503."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from imagegate.clock import SystemClock
from imagegate.storage.channels import ChannelRepo
from imagegate.storage.secretbox import SecretBox
from imagegate.storage.stores import open_stores
from tests.compat.relay.harness import ADMIN, PRIMARY_KEY, Admin
from tests.conftest import make_settings, run_server
from tests.fakes.upstream import FakeUpstream

BODY = {"prompt": "a boat", "size": "1024x1024", "quality": "low"}


def test_a_channel_sealed_with_another_key_is_skipped_and_the_others_serve(
    tmp_path: Path, primary: FakeUpstream
) -> None:
    settings = make_settings(tmp_path, admin_key=ADMIN, secret_key=secrets.token_hex(32))
    stores = open_stores(settings, SystemClock())  # the database, as another replica left it:
    other_replica = ChannelRepo(stores.sql, SystemClock(), SecretBox(secrets.token_hex(32)))
    other_replica.add(
        "sealed-elsewhere", primary.api_base, "sk-upstream-elsewhere-000000", ["gpt-image-1-mini"]
    )
    stores.close()
    with run_server(settings) as gateway:  # starts, whatever is in the channels table
        admin = Admin(gateway)
        admin.add("good", primary, PRIMARY_KEY, models=("gpt-image-1",))
        listed = {
            c["name"].split("-")[0] if c["name"].startswith("good-") else c["name"]: c
            for c in admin.channels()
        }
        assert "cannot be unsealed" in listed["sealed-elsewhere"]["error"]
        assert listed["good"]["error"] is None
        secret = gateway.new_key("sealed")
        auth = {"Authorization": f"Bearer {secret}"}
        ok = httpx.post(
            gateway.api_base + "/images/generations",
            json={**BODY, "model": "gpt-image-1"},
            headers=auth,
            timeout=30,
        )
        assert ok.status_code == 200 and len(primary.posts()) == 1
        skipped = httpx.post(
            gateway.api_base + "/images/generations",
            json={**BODY, "model": "gpt-image-1-mini"},
            headers=auth,
            timeout=30,
        )
        assert skipped.status_code == 503, skipped.text  # never the placeholder in its place
        assert len(primary.posts()) == 1
        admin.remove_all()
        admin.http.close()
