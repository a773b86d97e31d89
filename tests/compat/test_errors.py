"""Every client mistake answers in OpenAI's error shape, asserted through the SDK's classes."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer
from tests.imaging import encode, mask_png, noise, png
from tests.schemas import validate


def _bad_request(call: Any, code: str, param: str | None) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        call()
    err = info.value
    assert err.code == code, err.body
    assert err.param == param, err.body
    assert isinstance(err.body, dict)
    validate("Error", err.body)
    return err


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"size": "1000x1000000"}, "invalid_value", "size"),
        ({"size": "big"}, "invalid_value", "size"),
        ({"size": "4000x1000"}, "invalid_value", "size"),
        ({"quality": "standard"}, "invalid_value", "quality"),
        ({"quality": "hd"}, "invalid_value", "quality"),
        ({"n": 11}, "invalid_value", "n"),
        ({"n": 0}, "invalid_value", "n"),
        ({"output_compression": 101}, "invalid_value", "output_compression"),
        ({"output_format": "gif"}, "invalid_value", "output_format"),
        ({"background": "transparent", "output_format": "jpeg"}, "invalid_value", "background"),
        ({"partial_images": 4, "stream": False}, "invalid_value", "partial_images"),
        ({"prompt": ""}, "invalid_value", "prompt"),
        ({"prompt": "x" * 32001}, "invalid_value", "prompt"),
        ({"style": "vivid"}, "unknown_parameter", "style"),
        ({"moderation": "off"}, "invalid_value", "moderation"),
        ({"frame_count": 4}, "invalid_value", "frame_count"),
    ],
)
def test_generation_parameter_errors(
    client: openai.OpenAI, params: dict[str, Any], code: str, param: str
) -> None:
    body = {"model": "gpt-image-1", "prompt": "a cat", **params}
    prompt = body.pop("prompt")
    _bad_request(lambda: client.images.generate(prompt=prompt, extra_body=body), code, param)  # type: ignore[call-overload]


def test_unknown_and_missing_parameters(client: openai.OpenAI, http: httpx.Client) -> None:
    _bad_request(
        lambda: client.images.generate(prompt="x", extra_body={"colour": "red"}),
        "unknown_parameter",
        "colour",
    )
    resp = http.post("/v1/images/generations", json={"model": "gpt-image-1"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "missing_required_parameter"
    assert resp.json()["error"]["param"] == "prompt"
    resp = http.post(
        "/v1/images/generations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    resp = http.post("/v1/images/generations", json={"prompt": "x", "n": "many"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "n"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.images.generate(model="dall-e-9", prompt="x")
    assert info.value.code == "model_not_found" and info.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("dall-e-9")


def test_authentication_errors(server: LiveServer) -> None:
    with openai.OpenAI(base_url=server.api_base, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.images.generate(prompt="x")
    assert info.value.code == "invalid_api_key"
    resp = httpx.get(server.api_base + "/models")  # no Authorization header at all
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    resp = httpx.get(server.api_base + "/models", headers={"Authorization": "Basic abc"})
    assert resp.status_code == 401
    secret = server.new_key("to-revoke")
    with openai.OpenAI(base_url=server.api_base, api_key=secret, max_retries=0) as c:
        assert c.models.list().data
        repo = server.keys()
        repo.revoke(secret[:12])
        repo.engine.dispose()
        with pytest.raises(openai.AuthenticationError):
            c.models.list()


def test_moderation_blocks_and_low_relaxes(client: openai.OpenAI) -> None:
    prompt = "a poster with the Nike logo on a running shoe"
    err = _bad_request(lambda: client.images.generate(prompt=prompt), "moderation_blocked", None)
    assert err.type == "image_generation_user_error"
    assert "trademark" in err.message
    assert client.images.generate(prompt=prompt, moderation="low", quality="low").data
    _bad_request(
        lambda: client.images.generate(prompt="child porn", moderation="low"), "moderation_blocked", None
    )


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb)."""
    data = bytearray(png(8, 8))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize(
    ("image", "code", "param"),
    [
        (("notes.txt", b"hello, not an image", "text/plain"), "unsupported_file_mimetype", "image"),
        (("anim.gif", encode(noise(8, 8), "GIF"), "image/gif"), "unsupported_file_mimetype", "image"),
        (("cut.png", png(64, 64)[:200], "image/png"), "invalid_image_file", "image"),
        (("bomb.png", _png_with_size(100_000, 100_000), "image/png"), "invalid_image_file", "image"),
    ],
)
def test_bad_uploads(client: openai.OpenAI, image: Any, code: str, param: str) -> None:
    _bad_request(lambda: client.images.edit(image=image, prompt="x"), code, param)


def test_bad_masks(client: openai.OpenAI) -> None:
    base = ("a.png", png(256, 256), "image/png")
    _bad_request(
        lambda: client.images.edit(
            image=base, prompt="x", mask=("m.png", mask_png(128, 128, (0, 0, 10, 10)), "image/png")
        ),
        "invalid_value",
        "mask",
    )
    no_alpha = encode(noise(256, 256))
    _bad_request(
        lambda: client.images.edit(image=base, prompt="x", mask=("m.png", no_alpha, "image/png")),
        "invalid_image_file",
        "mask",
    )


def test_too_many_images(client: openai.OpenAI) -> None:
    images = [(f"{i}.png", png(16 + i, 16), "image/png") for i in range(17)]
    _bad_request(lambda: client.images.edit(image=images, prompt="x"), "invalid_value", "image")


def test_edit_without_image_and_string_image(http: httpx.Client) -> None:
    resp = http.post("/v1/images/edits", data={"prompt": "x"}, files={"other": ("a", b"1")})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "image"
    resp = http.post(
        "/v1/images/edits", data={"prompt": "x", "image": "https://x/y.png"}, files={"other": ("a", b"1")}
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_type"
    resp = http.post("/v1/images/edits", content=b"prompt=x", headers={"content-type": "text/plain"})
    assert resp.status_code == 400


def test_body_over_the_limit_is_413(server: LiveServer, api_key: str) -> None:
    big = b"\0" * (server.settings.max_body_bytes + 1)
    resp = httpx.post(
        server.api_base + "/images/edits",
        content=big,
        timeout=60,
        headers={"Authorization": f"Bearer {api_key}", "content-type": "multipart/form-data; boundary=x"},
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_unknown_route_and_method(http: httpx.Client) -> None:
    resp = http.get("/v1/nothing")
    assert resp.status_code == 404 and "error" in resp.json()
    resp = http.get("/v1/images/generations")
    assert resp.status_code == 405 and "error" in resp.json()
