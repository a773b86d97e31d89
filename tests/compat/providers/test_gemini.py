"""A Gemini API channel (`--provider gemini`) driven through the official openai SDK, against a strict
fake Gemini API (tests/fakes/gemini.py): generations and edits as generateContent calls, the guide's
sizes exact, n fanned out, formats converted, a stream served, usage and the operator's cost by
modality, content filters, keys and quotas, and failover to an OpenAI channel."""

from __future__ import annotations

import base64
import io
from typing import Any

import openai
import pytest
from PIL import Image

from imagegate.channels import Prober
from imagegate.pricing import token_cost
from tests.compat.providers import google_harness as harness
from tests.compat.providers.google_harness import (
    GEMINI_KEY,
    GUIDE_SIZES,
    OPENAI_KEY,
    channel_usage,
    generate_raw,
    opened,
)
from tests.compat.relay.harness import Admin, b64, record, sdk, spent_micros, wait_for
from tests.conftest import LiveServer
from tests.fakes.gemini import NO_PAID_QUOTA, UNAVAILABLE, FakeGemini, google_error, quota
from tests.fakes.upstream import FakeUpstream, tiny_png

FLASH, PRO = "gemini-2.5-flash-image", "gemini-3-pro-image-preview"
# The harness's fixtures, registered here (no conftest: other providers' tests share the directory).
gateway, admin, gemini_server, gemini = harness.gateway, harness.admin, harness.gemini_server, harness.gemini
openai_server, openai_upstream = harness.openai_server, harness.openai_upstream
PROMPT = "a red fox in a blue forest"  # generate_raw's: 7 words, 7 text tokens at the fake


def add(admin: Admin, fake: FakeGemini, model: str = FLASH, **fields: Any) -> dict[str, Any]:
    """A gemini channel serving the client's model name "nano-banana" as `model`."""
    fields = {"models": ("nano-banana",), "model_map": {"nano-banana": model}, **fields}
    return admin.add("gemini", fake, GEMINI_KEY, provider="gemini", **fields)


def operator_cost(text_in: int, image_in: int, image_out: int, per_1m: tuple[float, float]) -> int:
    """The channel's list price (input, image output per 1M tokens in dollars) in micro-dollars."""
    inputs, outputs = (round(p * 1_000_000) for p in per_1m)
    return token_cost(text_in, inputs) + token_cost(image_in, inputs) + token_cost(image_out, outputs)


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_generation_is_one_generate_content_call_billed_by_modality(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    channel = add(admin, gemini)
    with sdk(gateway, gateway.new_key("gemini-plain")) as client:
        result, headers = generate_raw(client, "nano-banana", size="1344x768")
    [post] = gemini.posts()
    assert post.path == f"/v1beta/models/{FLASH}:generateContent"
    assert post.headers["x-goog-api-key"] == GEMINI_KEY and "authorization" not in post.headers
    assert post.json() == {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }
    image = opened(result.data[0].b64_json)
    assert image.size == (1344, 768) and image.format == "PNG"
    assert "x-imagegate-adapted" not in headers
    rec = record(gateway, headers["x-request-id"])
    assert (rec["text_in"], rec["image_in"], rec["image_out"]) == (7, 0, 1290)
    assert rec["channel"] == channel["name"] and rec["status"] == 200
    assert rec["upstream_cost_micros"] == operator_cost(7, 0, 1290, (0.30, 30)) == 38_703  # $0.039
    assert result.usage is not None and result.usage.output_tokens == 1290


# The size each model is asked for (its closest native size that covers the asked one), and how.
ASKED = {
    FLASH: {"1080x1080": ("1024x1024", {"aspectRatio": "1:1"}),
            "1080x1920": ("768x1344", {"aspectRatio": "9:16"}),
            "1200x630": ("1344x768", {"aspectRatio": "16:9"}),
            "1200x675": ("1344x768", {"aspectRatio": "16:9"}),
            "1200x627": ("1344x768", {"aspectRatio": "16:9"})},
    PRO: {"1080x1080": ("2048x2048", {"aspectRatio": "1:1", "imageSize": "2K"}),
          "1080x1920": ("1536x2752", {"aspectRatio": "9:16", "imageSize": "2K"}),
          "1200x630": ("1376x768", {"aspectRatio": "16:9", "imageSize": "1K"}),
          "1200x675": ("1376x768", {"aspectRatio": "16:9", "imageSize": "1K"}),
          "1200x627": ("1376x768", {"aspectRatio": "16:9", "imageSize": "1K"})},
}  # fmt: skip


@pytest.mark.parametrize("model", [FLASH, PRO])
@pytest.mark.parametrize("size", GUIDE_SIZES)
def test_the_guides_sizes_come_back_exact(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini, model: str, size: str
) -> None:
    add(admin, gemini, model)
    with sdk(gateway, gateway.new_key("gemini-sizes")) as client:
        result, headers = generate_raw(client, "nano-banana", size=size)
    native, config = ASKED[model][size]
    [post] = gemini.posts()
    assert post.json()["generationConfig"]["imageConfig"] == config
    image = opened(result.data[0].b64_json)
    assert f"{image.width}x{image.height}" == size and image.format == "PNG"
    assert headers["x-imagegate-adapted"] == f"size={native}->{size}"
    assert result.size == size
    # The final picture (the fake's colour for the request), not Gemini 3's draft before it.
    assert image.convert("RGB").getpixel((image.width // 2, image.height // 2)) == (
        post.number * 53 % 256,
        120,
        200,
    )


def test_an_edit_sends_the_reference_images_inline(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    add(admin, gemini, PRO)
    first, second = png((64, 48), (200, 30, 30)), png((32, 32), (30, 30, 200))
    with sdk(gateway, gateway.new_key("gemini-edit")) as client:
        result = client.images.edit(
            model="nano-banana",
            image=[("fox.png", first, "image/png"), ("hat.png", second, "image/png")],
            prompt="put the hat on the fox",
            size="1024x1024",
        )
    [post] = gemini.posts()
    text, *parts = post.json()["contents"][0]["parts"]
    assert text == {"text": "put the hat on the fox"}
    assert [base64.b64decode(p["inline_data"]["data"]) for p in parts] == [first, second]
    assert [p["inline_data"]["mime_type"] for p in parts] == ["image/png", "image/png"]
    assert opened(result.data[0].b64_json).size == (1024, 1024)
    assert result.usage is not None and result.usage.input_tokens_details.image_tokens == 2 * 258


def test_n_is_fanned_out_one_call_per_image_and_every_call_costed(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    channel = add(admin, gemini)
    with sdk(gateway, gateway.new_key("gemini-fan")) as client:
        result, headers = generate_raw(client, "nano-banana", size="1024x1024", n=3)
    posts = gemini.posts()
    assert len(posts) == 3 and all("candidateCount" not in p.json()["generationConfig"] for p in posts)
    assert headers["x-imagegate-adapted"] == "n=3->3x1"
    images = [b64(d.b64_json) for d in result.data]
    assert len(set(images)) == 3  # three calls, three pictures
    rec = record(gateway, headers["x-request-id"])
    assert (rec["images"], rec["text_in"], rec["image_out"]) == (3, 21, 3 * 1290)
    assert rec["upstream_cost_micros"] == operator_cost(21, 0, 3 * 1290, (0.30, 30))
    row = channel_usage(admin, channel["name"])
    assert row["images"] == 3 and round(row["upstream_cost_usd"] * 1e6) == rec["upstream_cost_micros"]
    assert round(row["margin_usd"] * 1e6) == rec["cost_micros"] - rec["upstream_cost_micros"]


def test_a_format_gemini_lacks_is_converted(gateway: LiveServer, admin: Admin, gemini: FakeGemini) -> None:
    add(admin, gemini)
    with sdk(gateway, gateway.new_key("gemini-webp")) as client:
        result, headers = generate_raw(client, "nano-banana", size="1024x1024", output_format="webp")
    assert headers["x-imagegate-adapted"] == "format=png->webp"
    assert opened(result.data[0].b64_json).format == "WEBP"
    assert "output" not in str(gemini.posts()[0].json())  # Gemini has no format parameter


def test_a_streaming_client_gets_one_completed_event(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    add(admin, gemini)
    with sdk(gateway, gateway.new_key("gemini-stream")) as client:
        events = list(
            client.images.generate(
                model="nano-banana", prompt=PROMPT, size="1200x630", stream=True, partial_images=2
            )
        )
    assert [e.type for e in events] == ["image_generation.completed"]
    assert opened(events[0].b64_json).size == (1200, 630)
    assert len(gemini.posts()) == 1


@pytest.mark.parametrize(
    "refusal", [("blocked", "PROHIBITED_CONTENT"), ("blocked", "SAFETY"), ("finish", "IMAGE_SAFETY")]
)
def test_a_content_filter_is_moderation_blocked(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini, refusal: tuple[str, str]
) -> None:
    add(admin, gemini)
    gemini.default = refusal
    secret = gateway.new_key("gemini-filtered")
    with sdk(gateway, secret) as client, pytest.raises(openai.BadRequestError) as refused:
        generate_raw(client, "nano-banana", size="1024x1024")
    assert refused.value.code == "moderation_blocked"
    assert refused.value.type == "image_generation_user_error" and refusal[1] in refused.value.message
    assert len(gemini.posts()) == 1  # the client's fault: not retried
    assert spent_micros(gateway, secret) == 0


def test_an_answer_without_an_image_is_retried(gateway: LiveServer, admin: Admin, gemini: FakeGemini) -> None:
    add(admin, gemini)
    gemini.push(("text",))
    with sdk(gateway, gateway.new_key("gemini-text")) as client:
        result, _ = generate_raw(client, "nano-banana", size="1024x1024")
    assert result.data and len(gemini.posts()) == 2


def test_googles_invalid_argument_is_an_openai_error(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    add(admin, gemini)
    gemini.push(google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."))
    with sdk(gateway, gateway.new_key("gemini-400")) as client, pytest.raises(openai.BadRequestError) as bad:
        generate_raw(client, "nano-banana", size="1024x1024")
    assert bad.value.body == {
        "message": "Request contains an invalid argument.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_value",
    }


def test_a_rejected_key_disables_the_channel_until_the_key_check_answers(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    channel = add(admin, gemini)
    gemini.valid_keys = {"AIzaSy-some-other-key"}  # Google answers 400 API_KEY_INVALID
    with (
        sdk(gateway, gateway.new_key("gemini-key")) as client,
        pytest.raises(openai.APIStatusError) as failed,
    ):
        generate_raw(client, "nano-banana", size="1024x1024")
    assert failed.value.status_code >= 500  # no other channel serves the model
    view = admin.channel(channel["id"])
    assert (
        view["enabled"] is False
        and view["disabled_reason"] == "auto: the provider answered 400 (key rejected)"
    )
    wait_for(lambda: len(gemini.gets()) >= 2, what="two key checks")
    assert admin.channel(channel["id"])["enabled"] is False
    assert all(
        g.path == "/v1beta/models" and g.headers["x-goog-api-key"] == GEMINI_KEY for g in gemini.gets()
    )
    gemini.valid_keys = {GEMINI_KEY}
    wait_for(lambda: admin.channel(channel["id"])["enabled"], what="the key check to re-enable the channel")


def test_a_model_the_project_cannot_pay_for_takes_the_out_of_balance_path(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    channel = add(admin, gemini)
    gemini.default = NO_PAID_QUOTA
    with sdk(gateway, gateway.new_key("gemini-quota")) as client, pytest.raises(openai.APIStatusError):
        generate_raw(client, "nano-banana", size="1024x1024")
    view = admin.channel(channel["id"])
    assert (
        view["enabled"] is False and view["disabled_reason"] == "auto: the provider account is out of balance"
    )
    gemini.default = ("ok",)  # paid again: the balance probe (a real generation) re-enables it
    wait_for(lambda: admin.channel(channel["id"])["enabled"], what="the balance probe")
    probe = next(p for p in gemini.posts() if p.json()["contents"][0]["parts"][0]["text"] == Prober.PROMPT)
    assert probe.json()["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1"}


def test_a_rate_limit_is_retried_after_googles_delay(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    channel = add(admin, gemini)
    gemini.push(quota(10, retry_s=1))
    with sdk(gateway, gateway.new_key("gemini-429")) as client:
        result, _ = generate_raw(client, "nano-banana", size="1024x1024")
    assert result.data and len(gemini.posts()) == 2
    assert admin.channel(channel["id"])["enabled"] is True


def test_failover_from_a_failing_gemini_channel_to_an_openai_one(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini, openai_upstream: FakeUpstream
) -> None:
    add(admin, gemini, priority=10)
    gemini.default = UNAVAILABLE
    backup = admin.add(
        "openai",
        openai_upstream,
        OPENAI_KEY,
        models=("nano-banana",),
        model_map={"nano-banana": "gpt-image-1"},
        priority=0,
    )
    with sdk(gateway, gateway.new_key("gemini-failover")) as client:
        result, headers = generate_raw(client, "nano-banana", size="1024x1024", quality="medium")
    assert b64(result.data[0].b64_json) == tiny_png(0)  # the OpenAI channel's picture
    assert len(gemini.posts()) >= 1
    [post] = openai_upstream.posts("/images/generations")
    assert post.json()["model"] == "gpt-image-1" and post.bearer == OPENAI_KEY
    rec = record(gateway, headers["x-request-id"])
    assert rec["channel"] == backup["name"] and rec["attempts"] >= 2


def test_the_models_capabilities_and_what_is_refused(
    gateway: LiveServer, admin: Admin, gemini: FakeGemini
) -> None:
    add(admin, gemini, PRO)
    with sdk(gateway, gateway.new_key("gemini-caps")) as client:
        caps = client.models.retrieve("nano-banana").model_extra["capabilities"]  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="nano-banana", prompt="a logo", background="transparent")
    assert len(caps["sizes"]) == 30 and {"1376x768", "2752x1536", "5504x3072"} <= set(caps["sizes"])
    assert caps["max_n"] == 1 and caps["edits"] and not caps["masks"] and not caps["transparent_background"]
    assert caps["output_formats"] == ["png"] and caps["max_input_images"] == 14 and not caps["streaming"]
    assert refused.value.code == "unsupported_value" and refused.value.body["param"] == "background"  # type: ignore[index]
    assert not gemini.posts()
