"""The guide's recipes run unchanged against a channel of every provider kind: `imagegate recipe
social-media` (five platforms, five exact sizes) through the CLI, with the client's model name
mapped to each provider's own model."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.compat.relay.harness import Admin
from tests.conftest import PASSTHROUGH, LiveServer
from tests.fakes.azure import FakeAzure
from tests.fakes.gemini import FakeGemini
from tests.fakes.seedream import FakeArk
from tests.fakes.upstream import FakeUpstream, photo_png
from tests.fakes.vertex import FakeVertex
from tests.fakes.xai import FakeXai
from tests.services import CLI

KEY = "sk-provider-key-for-the-recipes-0123"
SIZES = {"instagram_post": (1080, 1080), "instagram_story": (1080, 1920), "facebook_post": (1200, 630),
         "twitter_post": (1200, 675), "linkedin_post": (1200, 627)}  # fmt: skip


def provider(kind: str) -> tuple[Any, str, dict[str, Any]]:
    """A fake of `kind`, the provider's model behind gpt-image-1, and the channel's fields."""
    if kind == "openai":
        fake = FakeUpstream()
        fake.image = photo_png(1024, 1024)
        return fake, "gpt-image-1", {}
    if kind == "azure":
        azure = FakeAzure(KEY, {"img": "gpt-image-1"})
        azure.image = photo_png(1024, 1024)
        return azure, "gpt-image-1", {"options": {"deployment": "img"}}
    if kind == "gemini":
        return FakeGemini(valid_keys={KEY}), "gemini-2.5-flash-image", {}
    if kind == "vertex":
        return FakeVertex(keys={KEY}), "imagen-4.0-generate-001", {}
    if kind == "seedream":
        return FakeArk(KEY), "doubao-seedream-4-0-250828", {}
    return FakeXai(KEY), "grok-imagine-image", {}


@pytest.fixture
def admin(gateway: LiveServer) -> Iterator[Admin]:
    admin = Admin(gateway)
    yield admin
    admin.remove_all()
    admin.http.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from tests.compat.relay.harness import ADMIN
    from tests.conftest import make_settings, run_server

    with run_server(
        make_settings(
            tmp_path_factory.mktemp("recipes"), admin_key=ADMIN, channel_refresh_s=0.2, **PASSTHROUGH
        )
    ) as live:
        yield live


@pytest.mark.parametrize("kind", ["openai", "azure", "gemini", "vertex", "seedream", "xai"])
def test_the_social_media_recipe_runs_unchanged_on_every_provider(
    gateway: LiveServer, admin: Admin, tmp_path: Path, kind: str
) -> None:
    fake, model, fields = provider(kind)
    with contextlib.ExitStack() as stack:
        stack.enter_context(fake)
        body = {"name": f"recipes-{kind}", "provider": kind, "base_url": fake.api_base, "api_key": KEY}
        resp = admin.http.post(
            "/admin/channels",
            json={**body, "models": ["gpt-image-1"], "model_map": {"gpt-image-1": model}, **fields},
        )
        assert resp.status_code == 201, resp.text
        env = {
            **os.environ,
            "IMAGEGATE_API_KEY": gateway.new_key(f"recipes-{kind}"),
            "IMAGEGATE_BASE_URL": gateway.api_base,
        }
        out = subprocess.run(
            [
                *CLI,
                "recipe",
                "social-media",
                "--theme",
                "autumn sale",
                "--out",
                str(tmp_path),
                "--quality",
                "low",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        posts = [r for r in fake.received if r.method == "POST"]
    report = json.loads(out.stdout)
    assert report and len(posts) >= len(SIZES)  # every image came from the provider
    files = sorted(tmp_path.glob("*.png"))
    assert len(files) == len(SIZES), [f.name for f in files]
    for name, size in SIZES.items():
        [path] = [f for f in files if name in f.name]
        with Image.open(path) as image:
            assert image.size == size, (kind, name)
