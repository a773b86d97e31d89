"""The official openai SDK against a real imagegate server: edits (multipart and JSON)."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest
from PIL import Image as PILImage
from PIL import ImageChops

from imagegate.images.tokens import count_text_tokens, input_image_tokens
from tests.imaging import encode, mask_png, noise, open_image, png
from tests.schemas import validate


def test_single_image_edit(client: openai.OpenAI) -> None:
    result = client.images.edit(
        model="gpt-image-1",
        image=("photo.png", png(1024, 1024), "image/png"),
        prompt="make it look like a watercolor",
    )
    assert result.size == "1024x1024"  # size auto: the model size nearest the input's ratio
    assert result.data is not None and result.data[0].b64_json and result.data[0].url
    assert open_image(base64.b64decode(result.data[0].b64_json)).size == (1024, 1024)
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens == input_image_tokens(1024, 1024) == 194
    assert result.usage.input_tokens_details.text_tokens == count_text_tokens(
        "make it look like a watercolor"
    )
    validate("ImagesResponse", result.model_dump(exclude_none=True, exclude={"seed"}))


def test_list_of_images_and_formats(client: openai.OpenAI) -> None:
    images = [
        ("a.png", png(1024, 1024, 1), "image/png"),
        ("b.jpg", encode(noise(640, 480, 2), "JPEG"), "image/jpeg"),
        ("c.webp", encode(noise(300, 300, 3), "WEBP"), "image/webp"),
    ]
    result = client.images.edit(
        model="gpt-image-1", image=images, prompt="a gift basket", size="1024x1024", input_fidelity="high"
    )
    assert result.usage is not None
    expected = (
        input_image_tokens(1024, 1024, high_fidelity=True)
        + input_image_tokens(640, 480)
        + input_image_tokens(300, 300)
    )
    assert result.usage.input_tokens_details.image_tokens == expected


def test_raw_bytes_upload_without_filename(client: openai.OpenAI) -> None:
    # The SDK sends bare bytes as application/octet-stream; the bytes themselves are a PNG.
    result = client.images.edit(model="gpt-image-1", image=png(256, 256), prompt="sharpen")
    assert result.size == "1024x1024"  # size auto: the model size nearest the input's ratio


def test_mask_keeps_pixels_outside_the_edit_area(client: openai.OpenAI) -> None:
    base = noise(512, 512, 9)
    box = (128, 128, 384, 320)
    result = client.images.edit(
        model="gpt-image-1",
        image=("base.png", encode(base), "image/png"),
        mask=("mask.png", mask_png(512, 512, box), "image/png"),
        prompt="put a small robot here",
        output_format="png",
        size="512x512",  # the input's own size
    )
    assert result.data is not None and result.data[0].b64_json
    out = open_image(base64.b64decode(result.data[0].b64_json)).convert("RGB")
    diff = ImageChops.difference(out, base)
    assert diff.getbbox() is not None
    left, top, right, bottom = diff.getbbox()  # every change lies inside the mask's hole
    assert left >= box[0] and top >= box[1] and right <= box[2] and bottom <= box[3]


def test_json_edit_with_data_urls(http: httpx.Client) -> None:
    def data_url(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode()

    resp = http.post(
        "/v1/images/edits",
        json={
            "model": "gpt-image-1",
            "prompt": "floor plan to 3D render",
            "images": [{"image_url": data_url(png(600, 400, 4))}, {"image_url": data_url(png(64, 64))}],
            "mask": {"image_url": data_url(mask_png(600, 400, (0, 0, 300, 400)))},
            "size": "1536x1024",
            "quality": "low",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["size"] == "1536x1024" and len(body["data"]) == 1
    validate("ImagesResponse", {k: v for k, v in body.items() if k != "seed"})


def test_generation_with_reference_image_url_becomes_an_edit(http: httpx.Client) -> None:
    # The guide's try-on code sends the garment as `image` in a generations body.
    garment = "data:image/png;base64," + base64.b64encode(png(512, 768, 5)).decode()
    resp = http.post(
        "/v1/images/generations",
        json={
            "model": "gpt-image-1",
            "prompt": "fashion model wearing this dress",
            "image": garment,
            "size": "1024x1536",
            "quality": "high",
            "effort": "high",
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["input_tokens_details"]["image_tokens"] == input_image_tokens(512, 768)


def test_reference_image_fetched_from_http_url(http: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    # Serve a PNG from imagegate itself (a signed URL), then use it as a reference by URL.
    first = http.post(
        "/v1/images/generations",
        json={"prompt": "a dress", "size": "1024x1024", "quality": "low", "response_format": "url"},
    )
    url = first.json()["data"][0]["url"]
    resp = http.post("/v1/images/edits", json={"prompt": "variation", "images": [{"image_url": url}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["size"] == "1024x1024"


def test_private_urls_are_refused_by_default(tmp_path, server, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings, run_server

    first = http.post(
        "/v1/images/generations", json={"prompt": "a dress", "quality": "low", "response_format": "url"}
    )
    loopback_url = first.json()["data"][0]["url"]  # a real image, on 127.0.0.1
    with run_server(make_settings(tmp_path, fetch_private_urls=False)) as guarded:
        secret = guarded.new_key()
        resp = httpx.post(
            guarded.api_base + "/images/edits",
            json={"prompt": "variation", "images": [{"image_url": loopback_url}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "images[0]"
    assert "private" in resp.json()["error"]["message"]


def test_decompression_bombs_are_bounded_per_request(client: openai.OpenAI) -> None:
    """Hardening: four 160 KB PNGs of 7000x7000 in one edit took the server from 300 MB to 1.46 GB.
    Each is within the per-image limit; together they are over the request's budget, refused from
    their headers before any pixel is decoded."""
    bomb = encode(PILImage.new("L", (7000, 7000)))
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            model="gpt-image-1",
            image=[(f"b{i}.png", bomb, "image/png") for i in range(4)],
            prompt="combine",
            quality="low",
        )
    assert info.value.code == "invalid_image_file" and "pixels" in info.value.message
    many = [(f"s{i}.png", png(256, 256, seed=i), "image/png") for i in range(16)]
    assert client.images.edit(model="gpt-image-1", image=many, prompt="a collage", quality="low").data
