"""Seedream (Volcengine Ark) channels through the official openai SDK: Ark's body (size as WxH,
watermark off, one image per call), references as data URLs, `n` fanned out and each image costed
at the list price, the guide's sizes exact (native where Seedream 4.0 renders them, adapted where
its pixel floor refuses them), JPEG converted, a stream served as one event, filtered content as
`moderation_blocked`, and a refused key or an overdue account disabling the channel."""

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
from tests.fakes.seedream import OVERDUE, FakeArk, sensitive
from tests.imaging import png

KEY = "ark-3f0a9c51-77d2-4e1b-9a60-5c2b8e0d14aa"
MODEL = "doubao-seedream-4-0-250828"
# Seedream 4.0 renders 1,280x720 pixels and more: two of the guide's sizes as they are, the other
# three at the closest size of their aspect ratio above that floor.
RENDERED = {"1080x1080": None, "1080x1920": None, "1200x630": "1325x696", "1200x675": "1280x720",
            "1200x627": "1328x694"}  # fmt: skip


@pytest.fixture
def seedream() -> Iterator[FakeArk]:
    fake = FakeArk(KEY)
    with fake:
        yield fake


def add(admin: Admin, fake: FakeArk, model: str = MODEL, **fields: object) -> dict[str, object]:
    return admin.add(
        "seedream",
        fake,
        KEY,
        models=("seedream",),
        provider="seedream",
        model_map={"seedream": model},
        **fields,
    )


def test_a_generation_speaks_arks_body_and_is_costed_per_image(
    gateway: LiveServer, admin: Admin, seedream: FakeArk
) -> None:
    add(admin, seedream)
    with sdk(gateway, gateway.new_key("ark-gen")) as client:
        result, headers = generate_raw(client, "seedream", size="2048x2048")
    [post] = seedream.posts()
    assert post.bearer == KEY and post.path == "/api/v3/images/generations"
    assert post.json() == {
        "model": MODEL,
        "prompt": PROMPT,
        "size": "2048x2048",
        "sequential_image_generation": "disabled",
        "response_format": "b64_json",
        "watermark": False,
    }
    image = opened(result.data[0].b64_json)
    assert image.size == (2048, 2048) and image.format == "PNG"  # Ark's JPEG, as the client asked
    assert headers["x-imagegate-adapted"] == "format=jpeg->png"
    assert upstream_cost(gateway, headers) == 30_000  # $0.03 an image


def test_an_edit_sends_the_references_as_data_urls(
    gateway: LiveServer, admin: Admin, seedream: FakeArk
) -> None:
    add(admin, seedream)
    references = [png(40, 30, seed=1), png(30, 30, seed=2)]
    with sdk(gateway, gateway.new_key("ark-edit")) as client:
        result = client.images.edit(
            model="seedream", image=references, prompt="a hat", size="1536x1024", output_format="jpeg"
        )
    assert opened(result.data[0].b64_json).size == (1536, 1024)
    [post] = seedream.posts()
    sent = post.json()["image"]
    assert [base64.b64decode(s.removeprefix("data:image/png;base64,")) for s in sent] == references
    assert post.path == "/api/v3/images/generations" and post.json()["size"] == "1536x1024"


def test_n_is_fanned_out_one_image_per_call_and_every_image_is_costed(
    gateway: LiveServer, admin: Admin, seedream: FakeArk
) -> None:
    add(admin, seedream)
    with sdk(gateway, gateway.new_key("ark-n")) as client:
        result, headers = generate_raw(client, "seedream", n=3, size="1280x720", output_format="jpeg")
    assert len(seedream.posts()) == 3 and all("n" not in p.json() for p in seedream.posts())
    assert [opened(d.b64_json).size for d in result.data] == [(1280, 720)] * 3
    assert headers["x-imagegate-adapted"] == "n=3->3x1"
    rec = record(gateway, headers["x-request-id"])
    assert rec["images"] == 3 and rec["upstream_cost_micros"] == 3 * 30_000


@pytest.mark.parametrize("size", GUIDE_SIZES)
def test_the_guides_sizes_come_back_exact(
    gateway: LiveServer, admin: Admin, seedream: FakeArk, size: str
) -> None:
    add(admin, seedream)
    with sdk(gateway, gateway.new_key("ark-sizes")) as client:
        result, headers = generate_raw(client, "seedream", size=size, output_format="jpeg")
    rendered = RENDERED[size]
    assert seedream.posts()[0].json()["size"] == (rendered or size)
    image = opened(result.data[0].b64_json)
    assert f"{image.width}x{image.height}" == size and image.format == "JPEG"
    assert headers.get("x-imagegate-adapted") == (f"size={rendered}->{size}" if rendered else None)


def test_seedream_4_5_renders_the_guides_sizes_from_its_higher_floor(
    gateway: LiveServer, admin: Admin, seedream: FakeArk
) -> None:
    add(admin, seedream, model="seedream-4-5-251128")
    with sdk(gateway, gateway.new_key("ark-45")) as client:
        result, headers = generate_raw(client, "seedream", size="1080x1920", output_format="jpeg")
    sent = seedream.posts()[0].json()["size"]
    width, height = map(int, sent.split("x"))
    assert width * height >= 2560 * 1440 and headers["x-imagegate-adapted"] == f"size={sent}->1080x1920"
    assert opened(result.data[0].b64_json).size == (1080, 1920)


def test_a_streaming_client_gets_one_completed_event(
    gateway: LiveServer, admin: Admin, seedream: FakeArk
) -> None:
    add(admin, seedream)
    with sdk(gateway, gateway.new_key("ark-stream")) as client:
        events = list(client.images.generate(model="seedream", prompt=PROMPT, size="1200x630", stream=True))
    assert [e.type for e in events] == ["image_generation.completed"]
    assert opened(events[0].b64_json).size == (1200, 630)
    assert "stream" not in seedream.posts()[0].json()


@pytest.mark.parametrize(
    "refusal",
    [
        sensitive("InputTextSensitiveContentDetected"),
        sensitive("InputImageSensitiveContentDetected"),
        ("failed-image", "OutputImageSensitiveContentDetected"),
    ],
)
def test_filtered_content_is_moderation_blocked(
    gateway: LiveServer, admin: Admin, seedream: FakeArk, refusal: tuple[object, ...]
) -> None:
    channel = add(admin, seedream)
    seedream.push(refusal)
    with sdk(gateway, gateway.new_key("ark-filter")) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="seedream", prompt=PROMPT, size="1280x720")
    assert refused.value.code == "moderation_blocked" and "sensitive" in refused.value.message
    assert channel_error(admin, channel) is None


@pytest.mark.parametrize("refusal", ["key", "overdue"])
def test_a_refused_key_or_an_overdue_account_disables_the_channel(
    gateway: LiveServer, admin: Admin, seedream: FakeArk, refusal: str
) -> None:
    if refusal == "overdue":
        channel = add(admin, seedream)
        seedream.default = OVERDUE
    else:
        channel = admin.add(
            "seedream", seedream, "ark-wrong-key", models=("seedream",), provider="seedream",
            model_map={"seedream": MODEL},
        )  # fmt: skip
    with sdk(gateway, gateway.new_key("ark-refused")) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            client.images.generate(model="seedream", prompt=PROMPT, size="1280x720")
    assert failed.value.status_code >= 500
    reason = channel_error(admin, channel) or ""
    assert ("out of balance" in reason) if refusal == "overdue" else ("401" in reason)


def test_the_fake_refuses_what_ark_refuses(seedream: FakeArk) -> None:
    url = seedream.api_base + "/images/generations"
    body = {"model": MODEL, "prompt": "p", "size": "1024x768"}  # under 4.0's 1280x720 pixels
    for headers, payload, code in (
        ({"Authorization": "Bearer nope"}, {**body, "size": "2K"}, "AuthenticationError"),
        ({"Authorization": f"Bearer {KEY}"}, body, "InvalidParameter"),
        ({"Authorization": f"Bearer {KEY}"}, {**body, "size": "2K", "n": 2}, "InvalidParameter"),
    ):
        resp = httpx.post(url, headers=headers, json=payload)
        assert resp.status_code in (400, 401) and resp.json()["error"]["code"] == code
