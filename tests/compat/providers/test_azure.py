"""Azure OpenAI channels through the official openai SDK: the deployment route with `api-key` and
the v1 route, edits always multipart, the guide's sizes exact, WebP converted (Azure writes PNG and
JPEG), streams relayed, the content filter as `moderation_blocked`, a rejected key disabling the
channel until the key check answers, and a channel added from the CLI."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.compat.providers.oailike_harness import (  # noqa: F401
    GUIDE_SIZES,
    PROMPT,
    admin_fixture,
    channel_error,
    gateway_fixture,
    generate_raw,
    opened,
    upstream_cost,
)
from tests.compat.relay.harness import Admin, priced, sdk, wait_for
from tests.conftest import LiveServer
from tests.fakes.azure import FakeAzure, content_filtered
from tests.fakes.upstream import USAGE
from tests.imaging import png

KEY = "azure-resource-key-3b9d0c7e41f2"
DEPLOYMENT = {"deployment": "img-deploy"}
# What gpt-image-1 renders for each of the guide's sizes (engines/adapt.py picks the closest).
RENDERED = {"1080x1080": "1024x1024", "1080x1920": "1024x1536", "1200x630": "1536x1024",
            "1200x675": "1536x1024", "1200x627": "1536x1024"}  # fmt: skip


@pytest.fixture
def azure() -> Iterator[FakeAzure]:
    fake = FakeAzure(KEY)
    with fake:
        yield fake


def add(admin: Admin, fake: FakeAzure, **fields: Any) -> dict[str, Any]:
    return admin.add("azure", fake, KEY, provider="azure", **{"options": DEPLOYMENT, **fields})


def test_a_generation_goes_to_the_deployment_with_the_api_key_and_is_costed_from_its_usage(
    gateway: LiveServer, admin: Admin, azure: FakeAzure
) -> None:
    add(admin, azure)
    with sdk(gateway, gateway.new_key("azure-gen")) as client:
        result, headers = generate_raw(client, "gpt-image-1", size="1024x1024", quality="medium")
    [post] = azure.posts()
    assert post.path == "/openai/deployments/img-deploy/images/generations?api-version=2025-04-01-preview"
    assert post.headers["api-key"] == KEY and "authorization" not in post.headers
    assert post.json() == {"model": "gpt-image-1", "prompt": PROMPT, "size": "1024x1024", "quality": "medium"}
    assert opened(result.data[0].b64_json).size == (1024, 1024) and "x-imagegate-adapted" not in headers
    assert result.usage is not None and result.usage.output_tokens == USAGE["output_tokens"]
    assert upstream_cost(gateway, headers) == priced(USAGE)  # OpenAI's gpt-image-1 list price


def test_the_v1_api_takes_the_deployment_as_the_model(
    gateway: LiveServer, admin: Admin, azure: FakeAzure
) -> None:
    add(admin, azure, options={**DEPLOYMENT, "api_version": "v1"}, models=["azure-image"])
    with sdk(gateway, gateway.new_key("azure-v1")) as client:
        result, _ = generate_raw(client, "azure-image", size="1536x1024")
    [post] = azure.posts()
    assert post.path == "/openai/v1/images/generations" and post.json()["model"] == "img-deploy"
    assert opened(result.data[0].b64_json).size == (1536, 1024)


@pytest.mark.parametrize("size", GUIDE_SIZES)
def test_the_guides_sizes_come_back_exact(
    gateway: LiveServer, admin: Admin, azure: FakeAzure, size: str
) -> None:
    add(admin, azure)
    with sdk(gateway, gateway.new_key("azure-sizes")) as client:
        result, headers = generate_raw(client, "gpt-image-1", size=size, output_format="jpeg")
    assert azure.posts()[0].json()["size"] == RENDERED[size]
    image = opened(result.data[0].b64_json)
    assert f"{image.width}x{image.height}" == size and image.format == "JPEG"
    assert headers["x-imagegate-adapted"] == f"size={RENDERED[size]}->{size}"


def test_webp_is_asked_as_png_and_converted(gateway: LiveServer, admin: Admin, azure: FakeAzure) -> None:
    add(admin, azure)
    with sdk(gateway, gateway.new_key("azure-webp")) as client:
        result, headers = generate_raw(client, "gpt-image-1", size="1024x1024", output_format="webp")
    assert azure.posts()[0].json()["output_format"] == "png"
    assert opened(result.data[0].b64_json).format == "WEBP"
    assert headers["x-imagegate-adapted"] == "format=png->webp"


def test_edits_go_multipart_whether_the_client_sent_files_or_json(
    gateway: LiveServer, admin: Admin, azure: FakeAzure
) -> None:
    add(admin, azure)
    references = [png(48, 32, seed=1), png(32, 32, seed=2)]
    secret = gateway.new_key("azure-edit")
    with sdk(gateway, secret) as client:
        result = client.images.edit(model="gpt-image-1", image=references, prompt="a hat", size="1024x1536")
    assert opened(result.data[0].b64_json).size == (1024, 1536)
    data_urls = [{"image_url": "data:image/png;base64," + base64.b64encode(r).decode()} for r in references]
    resp = httpx.post(
        gateway.api_base + "/images/edits",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-image-1", "prompt": "a hat", "images": data_urls},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    posts = azure.posts()
    assert [p.path.split("?")[0] for p in posts] == ["/openai/deployments/img-deploy/images/edits"] * 2
    for post in posts:
        assert post.is_multipart and [f.data for f in post.files()] == references
        assert [f.name for f in post.files()] == ["image[]", "image[]"] and post.params["prompt"] == "a hat"


def test_a_stream_is_relayed_event_by_event(gateway: LiveServer, admin: Admin, azure: FakeAzure) -> None:
    add(admin, azure)
    with sdk(gateway, gateway.new_key("azure-stream")) as client:
        events = list(
            client.images.generate(
                model="gpt-image-1", prompt=PROMPT, size="1024x1024", stream=True, partial_images=1
            )
        )
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert azure.posts()[0].json()["stream"] is True


@pytest.mark.parametrize("code", ["contentFilter", "content_filter"])
def test_the_content_filter_is_moderation_blocked(
    gateway: LiveServer, admin: Admin, azure: FakeAzure, code: str
) -> None:
    add(admin, azure)
    azure.push(content_filtered(code))
    with sdk(gateway, gateway.new_key("azure-filter")) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="gpt-image-1", prompt=PROMPT)
    assert refused.value.code == "moderation_blocked"
    assert refused.value.body["type"] == "image_generation_user_error"  # type: ignore[index]
    assert "safety system" in refused.value.message


def test_a_stream_the_content_filter_stops_ends_in_moderation_blocked(
    gateway: LiveServer, admin: Admin, azure: FakeAzure
) -> None:
    add(admin, azure)
    azure.push(("sse-filtered",))
    with sdk(gateway, gateway.new_key("azure-stream-filter")) as client:
        stream = client.images.generate(model="gpt-image-1", prompt=PROMPT, stream=True, partial_images=1)
        with pytest.raises(openai.APIError) as refused:
            for _ in stream:
                pass
    assert refused.value.code == "moderation_blocked" and "safety system" in refused.value.message


def test_a_rejected_key_disables_the_channel_until_the_key_check_answers(
    gateway: LiveServer, admin: Admin, azure: FakeAzure
) -> None:
    channel = add(admin, azure)
    azure.key = "another-key"
    with sdk(gateway, gateway.new_key("azure-key")) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            client.images.generate(model="gpt-image-1", prompt=PROMPT)
    assert failed.value.status_code >= 500 and KEY not in failed.value.message
    assert "401" in (channel_error(admin, channel) or "")
    wait_for(lambda: any(r.method == "GET" for r in azure.received), what="a key check")
    azure.key = KEY
    wait_for(lambda: channel_error(admin, channel) is None, what="the key check to re-enable the channel")
    check = next(r for r in azure.received if r.method == "GET")
    assert check.path == "/openai/models?api-version=2025-04-01-preview" and check.headers["api-key"] == KEY


def test_an_azure_channel_needs_its_resource_endpoint(gateway: LiveServer, admin: Admin) -> None:
    body = {"name": "no-endpoint", "api_key": KEY, "models": ["gpt-image-1"], "provider": "azure"}
    resp = admin.http.post("/admin/channels", json=body)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "base_url", resp.text
    resp = admin.http.post(
        "/admin/channels", json={**body, "base_url": "https://r.openai.azure.com", "options": {"region": "x"}}
    )
    assert resp.status_code == 400 and "deployment, api_version" in resp.json()["error"]["message"]


def test_an_azure_channel_added_from_the_cli_serves(
    gateway: LiveServer, admin: Admin, azure: FakeAzure
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env["IMAGEGATE_DATA_DIR"] = str(gateway.settings.data_dir)
    name = f"azure-cli-{uuid.uuid4().hex[:6]}"
    command = [
        sys.executable,
        "-m",
        "imagegate.cli",
        "channels",
        "add",
        "--name",
        name,
        "--provider",
        "azure",
    ]
    command += ["--base-url", azure.api_base, "--api-key", KEY, "--models", "gpt-image-1"]
    command += ["--option", "deployment=img-deploy", "--option", "api_version=2024-10-21"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and name in done.stdout and KEY not in done.stdout, done.stdout + done.stderr
    secret = gateway.new_key("azure-cli")

    def served() -> bool:
        models = httpx.get(
            gateway.api_base + "/models/gpt-image-1", headers={"Authorization": f"Bearer {secret}"}
        )
        return bool(models.json()["engine"] == f"upstream:{name}")

    wait_for(served, what="the gateway to load the new channel")
    with sdk(gateway, secret) as client:
        generate_raw(client, "gpt-image-1", size="1024x1024")
    [post] = azure.posts()
    assert post.path == "/openai/deployments/img-deploy/images/generations?api-version=2024-10-21"
