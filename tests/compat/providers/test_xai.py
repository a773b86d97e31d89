"""xAI channels through the official openai SDK: sizes as aspect ratio and resolution, never `size`;
the guide's sizes exact; `n` in one call and each image costed; edits as JSON with data URLs; PNG
asked of a JPEG-only provider; a stream served as one event; a withheld image as
`moderation_blocked`; xAI's 400 for a wrong key and its 403 for a team without credits disabling
the channel; grok-2-image's single size and no edits."""

from __future__ import annotations

import base64
from collections.abc import Iterator

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
from tests.compat.relay.harness import Admin, record, sdk
from tests.conftest import LiveServer
from tests.fakes.xai import NO_CREDITS, FakeXai
from tests.imaging import png

KEY = "xai-Qm9vYmFyYmF6cXV4cXV1eA-5d1c"
# What grok-imagine-image is asked for each of the guide's sizes: the nearest ratio, at the
# smallest resolution that covers the size.
RENDERED = {
    "1080x1080": ("1:1", "2k", "2048x2048"),
    "1080x1920": ("9:16", "2k", "1536x2816"),
    "1200x630": ("16:9", "1k", "1408x768"),
    "1200x675": ("16:9", "1k", "1408x768"),
    "1200x627": ("16:9", "1k", "1408x768"),
}


@pytest.fixture
def xai() -> Iterator[FakeXai]:
    fake = FakeXai(KEY)
    with fake:
        yield fake


def add(admin: Admin, fake: FakeXai, model: str = "grok-imagine-image", key: str = KEY) -> dict[str, object]:
    return admin.add("xai", fake, key, models=("grok",), provider="xai", model_map={"grok": model})


def test_a_generation_asks_a_ratio_and_resolution_and_is_costed_per_image(
    gateway: LiveServer, admin: Admin, xai: FakeXai
) -> None:
    add(admin, xai)
    with sdk(gateway, gateway.new_key("xai-gen")) as client:
        result, headers = generate_raw(client, "grok", size="1408x768", quality="high")
    [post] = xai.posts()
    assert post.bearer == KEY and post.path == "/v1/images/generations"
    assert post.json() == {
        "model": "grok-imagine-image",
        "prompt": PROMPT,
        "n": 1,
        "response_format": "b64_json",
        "aspect_ratio": "16:9",
        "resolution": "1k",
    }
    image = opened(result.data[0].b64_json)
    assert image.size == (1408, 768) and image.format == "PNG"  # xAI's JPEG, as the client asked
    assert headers["x-imagegate-adapted"] == "format=jpeg->png"
    assert upstream_cost(gateway, headers) == 20_000  # $0.02 an image


@pytest.mark.parametrize("size", GUIDE_SIZES)
def test_the_guides_sizes_come_back_exact(gateway: LiveServer, admin: Admin, xai: FakeXai, size: str) -> None:
    add(admin, xai)
    with sdk(gateway, gateway.new_key("xai-sizes")) as client:
        result, headers = generate_raw(client, "grok", size=size, output_format="jpeg")
    ratio, resolution, rendered = RENDERED[size]
    sent = xai.posts()[0].json()
    assert (sent["aspect_ratio"], sent["resolution"]) == (ratio, resolution) and "size" not in sent
    image = opened(result.data[0].b64_json)
    assert f"{image.width}x{image.height}" == size and image.format == "JPEG"
    assert headers["x-imagegate-adapted"] == f"size={rendered}->{size}"


def test_n_is_one_call_and_every_image_is_costed(gateway: LiveServer, admin: Admin, xai: FakeXai) -> None:
    add(admin, xai)
    with sdk(gateway, gateway.new_key("xai-n")) as client:
        result, headers = generate_raw(client, "grok", n=4, size="1024x1024", output_format="jpeg")
    [post] = xai.posts()
    assert post.json()["n"] == 4 and len(result.data) == 4
    rec = record(gateway, headers["x-request-id"])
    assert rec["images"] == 4 and rec["upstream_cost_micros"] == 4 * 20_000


def test_edits_send_the_references_as_json_data_urls(gateway: LiveServer, admin: Admin, xai: FakeXai) -> None:
    add(admin, xai)
    one, two = png(40, 30, seed=1), png(30, 30, seed=2)
    with sdk(gateway, gateway.new_key("xai-edit")) as client:
        client.images.edit(model="grok", image=one, prompt="a hat", size="1024x1024", output_format="jpeg")
        result = client.images.edit(model="grok", image=[one, two], prompt="a hat", size="1296x864")
    first, second = xai.posts()
    assert first.path == second.path == "/v1/images/edits" and not first.is_multipart
    assert first.json()["image"] == {
        "url": "data:image/png;base64," + base64.b64encode(one).decode(),
        "type": "image_url",
    }
    assert [base64.b64decode(i["url"].split(",")[1]) for i in second.json()["images"]] == [one, two]
    assert (second.json()["aspect_ratio"], second.json()["resolution"]) == ("3:2", "1k")
    assert opened(result.data[0].b64_json).size == (1296, 864)


def test_grok_imagine_2_takes_a_quality_and_is_priced_by_it(
    gateway: LiveServer, admin: Admin, xai: FakeXai
) -> None:
    add(admin, xai, model="grok-imagine-image-2.0")
    with sdk(gateway, gateway.new_key("xai-2")) as client:
        _, low = generate_raw(client, "grok", size="1024x1024", quality="low", output_format="jpeg")
        _, high = generate_raw(client, "grok", size="1024x1024", quality="high", output_format="jpeg")
    assert [p.json()["quality"] for p in xai.posts()] == ["low", "medium"]
    assert (upstream_cost(gateway, low), upstream_cost(gateway, high)) == (40_000, 60_000)


def test_grok_2_image_has_one_size_and_no_edits(gateway: LiveServer, admin: Admin, xai: FakeXai) -> None:
    add(admin, xai, model="grok-2-image")
    with sdk(gateway, gateway.new_key("xai-grok-2")) as client:
        result, headers = generate_raw(client, "grok", size="1200x630", output_format="jpeg")
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.edit(model="grok", image=png(32, 32), prompt="a hat")
    assert opened(result.data[0].b64_json).size == (1200, 630)
    assert headers["x-imagegate-adapted"] == "size=1024x768->1200x630"
    [post] = xai.posts()
    assert "aspect_ratio" not in post.json() and "resolution" not in post.json()
    assert refused.value.code == "unsupported_value" and refused.value.body["param"] == "image"  # type: ignore[index]


def test_a_streaming_client_gets_one_completed_event(gateway: LiveServer, admin: Admin, xai: FakeXai) -> None:
    add(admin, xai)
    with sdk(gateway, gateway.new_key("xai-stream")) as client:
        events = list(client.images.generate(model="grok", prompt=PROMPT, size="1200x675", stream=True))
    assert [e.type for e in events] == ["image_generation.completed"]
    assert opened(events[0].b64_json).size == (1200, 675)


def test_an_image_withheld_by_moderation_is_moderation_blocked(
    gateway: LiveServer, admin: Admin, xai: FakeXai
) -> None:
    channel = add(admin, xai)
    xai.push(("moderated",))
    with sdk(gateway, gateway.new_key("xai-moderated")) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="grok", prompt=PROMPT, size="1024x1024")
    assert refused.value.code == "moderation_blocked" and channel_error(admin, channel) is None


@pytest.mark.parametrize("refusal", ["key", "credits"])
def test_a_wrong_key_or_a_team_without_credits_disables_the_channel(
    gateway: LiveServer, admin: Admin, xai: FakeXai, refusal: str
) -> None:
    channel = add(admin, xai, key="xai-wrong-key" if refusal == "key" else KEY)
    if refusal == "credits":
        xai.default = NO_CREDITS
    with sdk(gateway, gateway.new_key("xai-refused")) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            client.images.generate(model="grok", prompt=PROMPT, size="1024x1024")
    assert failed.value.status_code >= 500 and "Incorrect API key" not in failed.value.message
    reason = channel_error(admin, channel) or ""
    assert ("out of balance" in reason) if refusal == "credits" else ("key rejected" in reason)


def test_the_fake_refuses_what_xai_refuses(xai: FakeXai) -> None:
    url = xai.api_base + "/images/generations"
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "grok-imagine-image", "prompt": "p"}
    for headers, payload, message in (
        ({"Authorization": "Bearer xai-nope"}, body, "Incorrect API key"),
        (auth, {**body, "size": "1024x1024"}, "Argument not supported: size"),
        (auth, {**body, "aspect_ratio": "7:5"}, "Invalid aspect_ratio"),
        (
            auth,
            {**body, "model": "grok-2-image", "aspect_ratio": "1:1"},
            "Argument not supported: aspect_ratio",
        ),
    ):
        resp = httpx.post(url, headers=headers, json=payload)
        assert resp.status_code == 400 and resp.json()["error"].startswith(message)
