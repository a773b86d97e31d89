"""A request is adapted to what the channel's model renders (engines/adapt.py), through the
official openai SDK: the guide's sizes come back exact from gpt-image-1 (which renders three),
formats are converted, n is fanned out, a stream is served by a model that cannot stream, and
what cannot be honoured goes to a channel that can or is refused by name."""

from __future__ import annotations

import io
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.compat.relay.harness import (
    CHANNEL_PRICES,
    PRIMARY_KEY,
    SECONDARY_KEY,
    Admin,
    b64,
    priced,
    record,
    sdk,
)
from tests.conftest import LiveServer
from tests.fakes.upstream import USAGE, FakeUpstream, tiny_png

GUIDE_SIZES = {"1080x1080": "1024x1024", "1080x1920": "1024x1536", "1200x630": "1536x1024",
               "1200x675": "1536x1024", "1200x627": "1536x1024"}  # fmt: skip


def generate_raw(client: openai.OpenAI, **params: Any) -> tuple[Any, httpx.Headers]:
    params = {"model": "gpt-image-1", "prompt": "a red fox in a blue forest", "quality": "medium", **params}
    raw = client.images.with_raw_response.generate(**params)
    return raw.parse(), raw.headers


def opened(data: str | None) -> Image.Image:
    return Image.open(io.BytesIO(b64(data)))


@pytest.mark.parametrize("size", sorted(GUIDE_SIZES))
def test_the_guides_sizes_come_back_exact_from_a_model_with_three_sizes(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, size: str
) -> None:
    admin.add("sizes", primary, PRIMARY_KEY)
    with sdk(gateway, gateway.new_key("adapt-size")) as client:
        result, headers = generate_raw(client, size=size, output_format="webp")
    [post] = primary.posts("/images/generations")
    assert post.json()["size"] == GUIDE_SIZES[size]  # asked at the size it renders
    assert post.json()["output_format"] == "webp"  # a format it has: asked as is
    image = opened(result.data[0].b64_json)
    assert f"{image.width}x{image.height}" == size and image.format == "WEBP"
    assert headers["x-imagegate-adapted"] == f"size={GUIDE_SIZES[size]}->{size}"
    assert result.size == size  # the response says what the client got


def test_a_size_the_model_renders_is_relayed_untouched(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("plain", primary, PRIMARY_KEY)
    with sdk(gateway, gateway.new_key("adapt-plain")) as client:
        result, headers = generate_raw(client, size="1536x1024")
    assert "x-imagegate-adapted" not in headers
    assert b64(result.data[0].b64_json) == tiny_png(0)  # the provider's bytes, not re-encoded


def test_n_beyond_the_channels_maximum_is_fanned_out_and_every_call_is_costed(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    channel = admin.add(
        "fan",
        primary,
        PRIMARY_KEY,
        prices=CHANNEL_PRICES,
        capabilities={"max_n": 1, "output_formats": ["png"]},
    )
    with sdk(gateway, gateway.new_key("adapt-fan")) as client:
        raw = client.images.with_raw_response.generate(
            model="gpt-image-1", prompt="three foxes", size="1024x1024", n=3, output_format="jpeg"
        )
    result = raw.parse()
    posts = primary.posts("/images/generations")
    assert [p.json()["n"] for p in posts] == [1, 1, 1]
    assert {p.json()["output_format"] for p in posts} == {"png"}
    assert raw.headers["x-imagegate-adapted"] == "format=png->jpeg; n=3->3x1"
    assert [opened(d.b64_json).format for d in result.data] == ["JPEG"] * 3
    rec = record(gateway, raw.headers["x-request-id"])
    assert rec["images"] == 3 and rec["image_out"] == 3 * USAGE["output_tokens"]
    assert rec["upstream_cost_micros"] == 3 * priced(USAGE, 4, 8, 30)
    rows = admin.http.get("/admin/usage", params={"by": "channel"}).json()["data"]
    [row] = [r for r in rows if r["channel"] == channel["name"]]
    assert row["images"] == 3 and round(row["upstream_cost_usd"] * 1e6) == rec["upstream_cost_micros"]
    assert round(row["margin_usd"] * 1e6) == rec["cost_micros"] - rec["upstream_cost_micros"] > 0


def test_a_stream_from_a_channel_that_cannot_stream_is_one_completed_event(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("nostream", primary, PRIMARY_KEY, capabilities={"streaming": False})
    with sdk(gateway, gateway.new_key("adapt-stream")) as client:
        events = list(
            client.images.generate(
                model="gpt-image-1", prompt="a fox", size="1200x630", stream=True, partial_images=2
            )
        )
    assert [e.type for e in events] == ["image_generation.completed"]
    assert opened(events[0].b64_json).size == (1200, 630)
    assert "stream" not in primary.posts("/images/generations")[0].json()


def test_transparency_goes_to_a_channel_with_alpha_else_is_refused_by_name(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    admin.add("noalpha", primary, PRIMARY_KEY, priority=10, capabilities={"transparent_background": False})
    with sdk(gateway, gateway.new_key("adapt-alpha")) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="gpt-image-1", prompt="a logo", background="transparent")
        assert refused.value.code == "unsupported_value"
        assert refused.value.body["param"] == "background"  # type: ignore[index]
        admin.add("alpha", secondary, SECONDARY_KEY, priority=0)
        result = client.images.generate(model="gpt-image-1", prompt="a logo", background="transparent")
    assert result.data and not primary.posts("/images/generations")
    assert len(secondary.posts("/images/generations")) == 1


def test_the_models_capabilities_are_listed_and_an_operator_can_override_them(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("caps", primary, PRIMARY_KEY, models=("gpt-image-1", "gpt-image-2", "custom-model"))
    admin.add("override", primary, PRIMARY_KEY, models=("narrow",), capabilities={"sizes": ["512x512"]})
    with sdk(gateway, gateway.new_key("adapt-models")) as client:
        caps = {m: client.models.retrieve(m).model_extra["capabilities"] for m in  # type: ignore[index]
                ("gpt-image-1", "gpt-image-2", "custom-model", "narrow")}  # fmt: skip
    assert caps["gpt-image-1"]["sizes"] == ["1024x1024", "1536x1024", "1024x1536"]
    assert (
        caps["gpt-image-2"]["sizes"]["multiple_of"] == 16
        and not caps["gpt-image-2"]["transparent_background"]
    )
    assert caps["custom-model"]["sizes"] == "any"
    assert caps["narrow"]["sizes"] == ["512x512"]


def test_capability_overrides_are_checked(gateway: LiveServer, admin: Admin, primary: FakeUpstream) -> None:
    body = {"name": "bad", "base_url": primary.api_base, "api_key": PRIMARY_KEY, "models": ["m"]}
    for capabilities, what in (({"colour": True}, "colour"), ({"max_n": "many"}, "max_n")):
        resp = admin.http.post("/admin/channels", json={**body, "capabilities": capabilities})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "capabilities" and what in resp.json()["error"]["message"]
    resp = admin.http.post("/admin/channels", json={**body, "provider": "dalle-clone"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "provider"
