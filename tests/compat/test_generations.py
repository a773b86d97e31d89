"""The official openai SDK against a real imagegate server: generations."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from imagegate.images.tokens import count_text_tokens, output_image_tokens
from tests.conftest import LiveServer
from tests.imaging import open_image
from tests.schemas import validate

PROMPT = "一只可爱的卡通猫咪坐在笔记本电脑前编程,背景是现代化的办公室"


def test_generate_echoes_values_and_usage(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1",
        prompt=PROMPT,
        size="1024x1536",
        quality="low",
        n=2,
        output_format="png",
        moderation="auto",
        user="user-123",
    )
    assert result.size == "1024x1536" and result.quality == "low"
    assert result.background == "opaque" and result.output_format == "png"
    assert result.created > 1_700_000_000
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.b64_json and item.url
        img = open_image(base64.b64decode(item.b64_json))
        assert img.format == "PNG" and img.size == (1024, 1536)
    assert result.usage is not None
    assert result.usage.input_tokens_details.text_tokens == count_text_tokens(PROMPT)
    assert result.usage.input_tokens_details.image_tokens == 0
    assert result.usage.output_tokens == 2 * output_image_tokens("low", 1024, 1536) == 816
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    validate("ImagesResponse", result.model_dump(exclude_none=True, exclude={"seed"}))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_formats(client: openai.OpenAI, fmt: str) -> None:
    result = client.images.generate(
        model="gpt-image-1",
        prompt="a lighthouse at dusk",
        size="1024x1024",
        quality="low",
        output_format=fmt,
        output_compression=60,  # type: ignore[arg-type]
    )
    assert result.data is not None and result.data[0].b64_json
    img = open_image(base64.b64decode(result.data[0].b64_json))
    assert img.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
    assert img.size == (1024, 1024)
    assert result.output_format == fmt


def test_transparent_background_has_real_alpha(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1",
        prompt="game item: a golden sword icon",
        background="transparent",
        output_format="webp",
        size="1024x1024",
        quality="medium",
    )
    assert result.background == "transparent"
    assert result.data is not None and result.data[0].b64_json
    img = open_image(base64.b64decode(result.data[0].b64_json)).convert("RGBA")
    low, high = img.getchannel("A").getextrema()
    assert low == 0 and high == 255


@pytest.mark.parametrize("size", ["1080x1080", "1080x1920", "1200x630", "1200x675", "1200x627"])
def test_guide_custom_sizes_come_back_exact(client: openai.OpenAI, size: str) -> None:
    result = client.images.generate(
        model="gpt-image-1",
        prompt="social post",
        size=size,  # type: ignore[arg-type]
        quality="low",
    )
    assert result.size == size
    assert result.data is not None and result.data[0].b64_json
    w, h = map(int, size.split("x"))
    assert open_image(base64.b64decode(result.data[0].b64_json)).size == (w, h)


def test_auto_values_are_resolved(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1", prompt="a cat", size="auto", quality="auto", background="auto"
    )
    assert result.size == "1024x1024" and result.quality == "medium"
    assert result.background == "opaque"


def test_same_seed_same_pixels(client: openai.OpenAI) -> None:
    def run(seed: int) -> bytes:
        r = client.images.generate(
            model="gpt-image-1",
            prompt="a red fox in a blue forest",
            size="1024x1024",
            quality="low",
            extra_body={"seed": seed},
        )
        assert r.data is not None and r.data[0].b64_json
        assert r.model_extra is not None and r.model_extra["seed"] == seed
        # Pixels, not bytes: with provenance on, each image's C2PA manifest is its own.
        return open_image(base64.b64decode(r.data[0].b64_json)).tobytes()

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_response_format_url_only_and_url_serves_the_image(client: openai.OpenAI, http: httpx.Client) -> None:
    result = client.images.generate(
        model="gpt-image-1",
        prompt="url please",
        size="1024x1024",
        quality="low",
        response_format="url",
        extra_body={"seed": 7},
    )
    assert result.data is not None
    item = result.data[0]
    assert item.b64_json is None and item.url
    resp = httpx.get(item.url)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    same = client.images.generate(
        model="gpt-image-1",
        prompt="url please",
        size="1024x1024",
        quality="low",
        response_format="b64_json",
        extra_body={"seed": 7},
    )
    assert same.data is not None and same.data[0].url is None
    # The same seed's pixels (each image's C2PA manifest, when signing is on, is its own).
    assert (
        open_image(base64.b64decode(same.data[0].b64_json or "")).tobytes()
        == open_image(resp.content).tobytes()
    )


def test_tampered_url_is_403(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1", prompt="tamper", quality="low", response_format="url"
    )
    assert result.data is not None and result.data[0].url
    url = result.data[0].url
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    resp = httpx.get(tampered)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "invalid_signature"
    later = url.replace("expires=", "expires=9")
    assert httpx.get(later).status_code == 403


def test_guide_spellings(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/images/generations",
        json={
            "model": "gpt-image-1",
            "prompt": "game asset: a shield",
            "size": "1024x1024",
            "quality": "medium",
            "effort": "high",
            "format": "webp",
            "transparency": True,
            "compression": 85,
            "n": 1,
            "user": "user-123",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["output_format"] == "webp" and body["background"] == "transparent"
    # The guide reads result['data'][0]['url'] and downloads it.
    image = httpx.get(body["data"][0]["url"])
    assert image.headers["content-type"] == "image/webp"
    assert open_image(image.content).mode == "RGBA"


def test_x_request_id_on_success_and_error(http: httpx.Client) -> None:
    ok = http.get("/v1/models")
    bad = http.post("/v1/images/generations", json={"prompt": ""})
    assert ok.headers["x-request-id"].startswith("req_")
    assert bad.headers["x-request-id"].startswith("req_")
    assert ok.headers["x-request-id"] != bad.headers["x-request-id"]


@pytest.mark.anyio
async def test_async_client(server: LiveServer, api_key: str) -> None:
    async with openai.AsyncOpenAI(base_url=server.api_base, api_key=api_key) as aclient:
        result = await aclient.images.generate(
            model="gpt-image-1", prompt="async fox", quality="low", size="1536x1024"
        )
        assert result.size == "1536x1024"
        stream = await aclient.images.generate(
            model="gpt-image-1", prompt="async stream", quality="low", stream=True, partial_images=1
        )
        types = [event.type async for event in stream]
        assert types == ["image_generation.partial_image", "image_generation.completed"]
