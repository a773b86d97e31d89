"""The sync client against the real imagegate server (placeholder engine) on loopback."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from imagegate.client import AuthenticationError, BadRequestError, Client, ImagegateError
from imagegate.client._client import LOCAL_BASE_URL, OPENAI_BASE_URL, resolve_connection
from imagegate.client.pricing import output_image_tokens
from tests.conftest import LiveServer
from tests.imaging import mask_png, pixels, png


def test_generate_returns_typed_images_with_cost(live: Client) -> None:
    result = live.generate("a red fox in a blue forest", size="1024x1536", quality="low", n=2, seed=7)
    assert len(result) == 2 and result.size == "1024x1536" and result.quality == "low"
    assert result.seed == 7 and result.output_format == "png" and result.background == "opaque"
    for image in result:
        assert image.to_pil().size == (1024, 1536)
        assert image.format == "png" and image.url and image.url.startswith("http://127.0.0.1")
    assert result.usage is not None
    assert result.usage.output_tokens == 2 * output_image_tokens("low", 1024, 1536)
    # $40/M image out + $5/M text in, from the server's /v1/pricing (the default figures)
    expected = (result.usage.output_tokens * 40 + result.usage.text_tokens * 5) / 1e6
    assert result.cost_usd == pytest.approx(expected, abs=2e-6)
    assert not result.cost_estimated and result.request_id


def test_same_seed_same_pixels(live: Client) -> None:
    a = live.generate("seeded", quality="low", seed=42)
    b = live.generate("seeded", quality="low", seed=42)
    assert pixels(a.image.bytes) == pixels(b.image.bytes)  # each signed anew: the same pixels


def test_save_converts_by_extension_and_to_pil(live: Client, tmp_path: Path) -> None:
    out = tmp_path
    result = live.generate("transparent sticker", background="transparent", quality="low")
    png_path, jpg_path, bare = (
        result.image.save(out / "a.png"),
        result.image.save(out / "b.jpg"),
        result.image.save(out / "c"),
    )
    assert png_path.read_bytes() == result.image.bytes
    with PILImage.open(jpg_path) as jpg:
        assert jpg.format == "JPEG" and bare.suffix == ".png"
    assert result.image.to_pil().mode == "RGBA"
    with pytest.raises(ValueError):
        result.image.save(out / "d.gif")


def test_edit_accepts_paths_bytes_files_and_pil(live: Client, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    path.write_bytes(png(300, 200, seed=1))
    inputs = [path, png(64, 64, seed=2), io.BytesIO(png(80, 80, seed=3)), PILImage.new("RGB", (90, 90))]
    result = live.edit(inputs, "combine these", size="1024x1024", quality="low")
    assert result.image.to_pil().size == (1024, 1024)
    assert result.usage is not None and result.usage.image_tokens > 0  # four input images counted


def test_edit_with_mask_and_a_data_url(live: Client) -> None:
    masked = live.edit(png(256, 256), "add a sun", mask=mask_png(256, 256, (0, 0, 128, 128)), quality="low")
    assert masked.size == "1024x1024"  # size auto: the model size nearest the first image's ratio
    data_url = "data:image/png;base64," + base64.b64encode(png(128, 96)).decode()
    via_json = live.edit(data_url, "add snow", quality="low")  # a URL input: a JSON edit
    assert via_json.image.to_pil().size == (1536, 1024)  # auto: the model size nearest 128:96


def test_url_input_is_sent_as_json_with_image_url(live: Client, server: LiveServer) -> None:
    first = live.generate("source", size="1024x1024", quality="low")
    assert first.image.url
    edited = live.edit(first.image.url, "make it night", size="1536x1024", quality="low")
    assert edited.image.to_pil().size == (1536, 1024)


def test_url_only_answers_are_downloaded(live: Client) -> None:
    result = live.generate("by url", quality="low", response_format="url")
    assert result.image.url and result.image.to_pil().size == (1024, 1024)


def test_stream_yields_partials_then_completed(live: Client) -> None:
    events = list(live.stream("a city at night", partial_images=2, quality="low"))
    assert [e.partial for e in events] == [True, True, False]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    done = events[-1]
    assert done.type == "image_generation.completed" and done.usage is not None
    assert done.usage.output_tokens == output_image_tokens("low", 1024, 1024) + 200
    assert done.cost_usd > 0 and done.image.to_pil().size == (1024, 1024)
    records = live.monitor.records
    assert records[-1].kind == "generate-stream" and records[-1].success and records[-1].images == 1


def test_stream_edit(live: Client) -> None:
    events = list(live.stream("add snow", images=[png(128, 128)], partial_images=1, quality="low"))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


def test_errors_mirror_the_server(live: Client, server: LiveServer) -> None:
    with pytest.raises(BadRequestError) as caught:
        live.generate("x", size="13x13")
    assert caught.value.param == "size" and caught.value.code == "invalid_value"
    assert caught.value.status_code == 400 and caught.value.request_id
    with Client("sk-ig-not-a-real-key", server.api_base) as stranger, pytest.raises(AuthenticationError):
        stranger.generate("x")
    failed = live.monitor.records[-1]
    assert not failed.success and failed.error_code == "invalid_value" and failed.status_code == 400


def test_pricing_and_estimates_from_the_server(live: Client) -> None:
    table = live.pricing()
    assert table.source == "server" and "gpt-image-1" in table.models
    assert live.estimate_cost(quality="high", size="1024x1536", n=4) == pytest.approx(0.9984)
    assert live.models() and any(m["id"] == "gpt-image-1" for m in live.models())


def test_idempotency_key_replays_and_charges_once(live: Client, server: LiveServer, api_key: str) -> None:
    """Two logical calls with one Idempotency-Key: the server replays, and charges once."""
    with httpx.Client(base_url=server.api_base + "/", headers={"Authorization": f"Bearer {api_key}"}) as http:
        before = http.get("usage").json()["spent_usd"]
        first = live.generate("charged once", quality="low", idempotency_key="ig-test-charged-once")
        again = live.generate("charged once", quality="low", idempotency_key="ig-test-charged-once")
        after = http.get("usage").json()["spent_usd"]
    assert again.image.bytes == first.image.bytes
    assert after - before == pytest.approx(first.cost_usd, abs=2e-6)


def test_connection_settings_resolution() -> None:
    env = {"IMAGEGATE_API_KEY": "ig", "OPENAI_API_KEY": "oa", "OPENAI_BASE_URL": "https://x/v1/"}
    assert resolve_connection(environ=env) == ("ig", "https://x/v1")
    assert resolve_connection(environ={"OPENAI_API_KEY": "oa"}) == ("oa", OPENAI_BASE_URL)
    assert resolve_connection(environ={"IMAGEGATE_API_KEY": "ig"}) == ("ig", LOCAL_BASE_URL)
    assert resolve_connection("k", "http://h/v1", environ={}) == ("k", "http://h/v1")
    with pytest.raises(ImagegateError, match="No API key"):
        resolve_connection(environ={})


def test_top_level_exports() -> None:
    import imagegate

    assert imagegate.Client is Client and imagegate.AsyncClient.__name__ == "AsyncClient"
    with pytest.raises(AttributeError):
        imagegate.Nope  # noqa: B018


def test_the_key_goes_only_to_the_apis_own_origin() -> None:
    from imagegate.client._core import same_origin

    assert same_origin("http://127.0.0.1:8000/v1/images/files/a.png", "http://127.0.0.1:8000/v1")
    assert not same_origin("http://127.0.0.1:8001/a.png", "http://127.0.0.1:8000/v1")
    assert not same_origin("https://cdn.example.com/a.png", "https://api.example.com/v1")
