"""engines/gemini.py, the pure translation: sizes to aspect ratio and tier, the request body, the
answer (images, thought drafts, refusals), usageMetadata, and Google's errors to OpenAI's shapes
and to what they mean for the channel."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from imagegate.domain import ImageJob
from imagegate.engines.adapt import closest
from imagegate.engines.gemini import (
    GEMINI,
    GRIDS,
    Fault,
    classify,
    image_config,
    inline,
    openai_error,
    parse_answer,
    request_body,
    usage,
)
from imagegate.images.decode import inspect_image
from imagegate.images.tokens import MAX_TOKENS, Usage
from tests.fakes.gemini import BILLING_DISABLED, KEY_INVALID, NO_KEY, NO_PAID_QUOTA, RATE_LIMITED, UNAVAILABLE

FLASH, PRO, FLASH_31 = (
    "gemini-2.5-flash-image",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
)


def png(size: tuple[int, int] = (4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


# Google's tables, a few rows of each (ai.google.dev/gemini-api/docs/image-generation).
@pytest.mark.parametrize(
    ("model", "size", "config"),
    [
        (FLASH, "1024x1024", {"aspectRatio": "1:1"}),
        (FLASH, "1344x768", {"aspectRatio": "16:9"}),
        (FLASH, "832x1248", {"aspectRatio": "2:3"}),
        (FLASH, "1536x672", {"aspectRatio": "21:9"}),
        (PRO, "1024x1024", {"aspectRatio": "1:1", "imageSize": "1K"}),
        (PRO, "2752x1536", {"aspectRatio": "16:9", "imageSize": "2K"}),
        (PRO, "3712x4608", {"aspectRatio": "4:5", "imageSize": "4K"}),
        (PRO, "6336x2688", {"aspectRatio": "21:9", "imageSize": "4K"}),
        (FLASH_31, "512x512", {"aspectRatio": "1:1", "imageSize": "512"}),
        (FLASH_31, "792x336", {"aspectRatio": "21:9", "imageSize": "512"}),
        (FLASH_31, "2048x512", {"aspectRatio": "4:1", "imageSize": "1K"}),
        (FLASH_31, "1536x12288", {"aspectRatio": "1:8", "imageSize": "4K"}),
    ],
)
def test_a_native_size_is_its_aspect_ratio_and_tier(model: str, size: str, config: dict[str, str]) -> None:
    width, height = map(int, size.split("x"))
    assert size in GEMINI.capabilities(model).sizes  # type: ignore[operator]
    assert image_config(model, width, height) == config


def test_the_grids_have_every_ratio_at_every_tier() -> None:
    assert len(GRIDS["gemini-2.5-flash-image"].sizes) == 10
    assert len(GRIDS["gemini-3-pro-image"].sizes) == 30
    assert len(GRIDS["gemini-3.1-flash-image"].sizes) == 14 * 4
    assert {tier for _, tier in GRIDS["gemini-3-pro-image"].sizes.values()} == {"1K", "2K", "4K"}


@pytest.mark.parametrize(
    ("model", "size", "config"),
    [
        (FLASH, (1200, 630), {"aspectRatio": "16:9"}),
        (FLASH, (1080, 1920), {"aspectRatio": "9:16"}),
        (PRO, (1080, 1080), {"aspectRatio": "1:1", "imageSize": "2K"}),  # 1K would not cover it
        (PRO, (1200, 630), {"aspectRatio": "16:9", "imageSize": "1K"}),
        (PRO, (5000, 5000), {"aspectRatio": "1:1", "imageSize": "4K"}),
        ("gemini-9-image-unknown", (1200, 630), {"aspectRatio": "16:9"}),  # unknown: ratio only
    ],
)
def test_a_size_outside_the_grid_asks_the_closest_native_one(
    model: str, size: tuple[int, int], config: dict[str, str]
) -> None:
    # What the gateway's plan asks for (engines/adapt.py), and an operator's "any size" override.
    caps = GEMINI.capabilities(model)
    assert image_config(model, *closest(*size, caps)) == config
    assert image_config(model, *size) == config


def job(**fields: Any) -> ImageJob:
    return ImageJob(model="nano", prompt="a fox in the snow", width=1344, height=768, **fields)


def test_the_request_body() -> None:
    assert request_body(job(), FLASH, []) == {
        "contents": [{"role": "user", "parts": [{"text": "a fox in the snow"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }
    low = request_body(job(moderation="low"), FLASH, [])
    assert {s["threshold"] for s in low["safetySettings"]} == {"BLOCK_ONLY_HIGH"}


def test_reference_images_go_inline_after_the_prompt() -> None:
    first, second = png(), png((6, 3))
    images = (inspect_image(first, param="image"), inspect_image(second, param="image"))
    body = request_body(job(kind="edit", images=images), PRO, inline(images))
    text, *parts = body["contents"][0]["parts"]
    assert text == {"text": "a fox in the snow"}
    assert [base64.b64decode(p["inline_data"]["data"]) for p in parts] == [first, second]
    assert {p["inline_data"]["mime_type"] for p in parts} == {"image/png"}


def candidate(*parts: dict[str, Any], finish: str = "STOP") -> dict[str, Any]:
    return {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish}


def image_part(data: bytes, **extra: Any) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}, **extra}


def test_the_answers_image_skips_thought_drafts_and_text() -> None:
    draft, final = png((2, 2)), png((8, 8))
    body = {
        "candidates": [candidate({"text": "Here it is"}, image_part(draft, thought=True), image_part(final))],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1290},
    }
    answer = parse_answer(body)
    assert [(data, mime) for data, _, mime in answer.images] == [(final, "image/png")]
    assert answer.refused is None and answer.usage == Usage(text_in=7, image_out=1290)


@pytest.mark.parametrize(
    ("body", "refused", "blocked"),
    [
        ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, "PROHIBITED_CONTENT", True),
        ({"promptFeedback": {"blockReason": "OTHER"}}, "OTHER", True),
        ({"candidates": [candidate(finish="IMAGE_SAFETY")]}, "IMAGE_SAFETY", True),
        ({"candidates": [candidate(finish="SAFETY")]}, "SAFETY", True),
        ({"candidates": [candidate({"text": "I can't"}, finish="STOP")]}, "STOP", False),
        ({"candidates": [candidate(finish="NO_IMAGE")]}, "NO_IMAGE", False),
        ({"candidates": []}, "no candidates", False),
    ],
)
def test_an_answer_without_an_image_says_why(body: dict[str, Any], refused: str, blocked: bool) -> None:
    answer = parse_answer(body)
    assert not answer.images and answer.refused == refused and answer.blocked is blocked


NOT_BASE64 = {"inlineData": {"mimeType": "image/png", "data": "not base64!"}}


@pytest.mark.parametrize("body", [{"candidates": [candidate(NOT_BASE64)]}, {"candidates": "x"}, []])
def test_a_malformed_answer_raises(body: Any) -> None:
    with pytest.raises((ValueError, KeyError, TypeError, AttributeError)):
        parse_answer(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {
                "promptTokenCount": 530,
                "candidatesTokenCount": 1290,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 14},
                    {"modality": "IMAGE", "tokenCount": 516},
                ],
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
                "thoughtsTokenCount": 200,  # no place in Usage
            },
            Usage(text_in=14, image_in=516, image_out=1290),
        ),
        ({"promptTokenCount": 9, "candidatesTokenCount": 1120}, Usage(text_in=9, image_out=1120)),
        (
            {
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 3},
                    {"modality": "TEXT", "tokenCount": 2},
                ],
                "candidatesTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 12},
                    {"modality": "IMAGE", "tokenCount": 2000},
                ],
            },
            Usage(text_in=5, image_out=2000),
        ),
        (None, None),
        ({"promptTokenCount": "many"}, None),
        ({"promptTokenCount": -1}, None),
        ({"candidatesTokenCount": MAX_TOKENS + 1}, None),
        ({"promptTokensDetails": [None]}, None),
    ],
)
def test_usage_metadata_by_modality(raw: Any, expected: Usage | None) -> None:
    assert usage(raw) == expected


def body_of(behaviour: tuple[Any, ...]) -> Any:
    return behaviour[2]


@pytest.mark.parametrize(
    ("status", "body", "fault"),
    [
        (400, body_of(KEY_INVALID), Fault("key")),
        (403, body_of(NO_KEY), Fault("key")),
        (401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "x"}}, Fault("key")),
        (403, body_of(BILLING_DISABLED), Fault("balance")),
        (429, body_of(NO_PAID_QUOTA), Fault("balance")),
        (
            429,
            {
                "error": {
                    "code": 429,
                    "status": "RESOURCE_EXHAUSTED",
                    "message": "* Quota exceeded for metric: x, limit: 0, model: y\nPlease retry in 20.5s.",
                }
            },
            Fault("balance"),
        ),
        (429, body_of(RATE_LIMITED), Fault(retry_after_s=3.0)),
        (
            429,
            {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Please retry in 7.25s."}},
            Fault(retry_after_s=7.25),
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "FAILED_PRECONDITION",
                    "message": "Gemini API free tier is not "
                    "available in your country. Please enable billing on your project.",
                }
            },
            Fault("balance"),
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "FAILED_PRECONDITION",
                    "message": "User location is not supported for the API use.",
                }
            },
            Fault(retryable=True),
        ),
        (400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Bad aspect ratio"}}, Fault()),
        (503, body_of(UNAVAILABLE), Fault()),
        (502, None, Fault()),
    ],
)
def test_what_a_google_error_means_for_the_channel(status: int, body: Any, fault: Fault) -> None:
    assert classify(status, body) == fault


SECRET = "AIzaSy-secret-key-of-the-channel"
RAI = "This prompt contains sensitive words that violate Google's Responsible AI practices."


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": "Unsupported aspect ratio: 7:3.",
                }
            },
            {
                "message": "Unsupported aspect ratio: 7:3.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_value",
            },
        ),
        (
            404,
            {"error": {"code": 404, "status": "NOT_FOUND", "message": "models/x is not found"}},
            {
                "message": "models/x is not found",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            },
        ),
        (
            429,
            body_of(RATE_LIMITED),
            {
                "message": body_of(RATE_LIMITED)["error"]["message"],
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            },
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": RAI,
                }
            },
            {
                "message": RAI,
                "type": "image_generation_user_error",
                "param": None,
                "code": "moderation_blocked",
            },
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": f"key {SECRET} and Bearer ya29.tok",
                }
            },
            {
                "message": "key [redacted] and [redacted]",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_value",
            },
        ),
        (
            503,
            body_of(UNAVAILABLE),
            {
                "message": body_of(UNAVAILABLE)["error"]["message"],
                "type": "server_error",
                "param": None,
                "code": None,
            },
        ),
    ],
)
def test_a_google_error_in_openais_shape(status: int, body: Any, expected: dict[str, Any]) -> None:
    assert openai_error(status, body, SECRET) == {"error": expected}


@pytest.mark.parametrize("body", [None, {"error": "text"}, {"detail": "x"}, []])
def test_a_body_that_is_not_a_google_error_is_the_gateways_own(body: Any) -> None:
    assert openai_error(500, body, SECRET) is None


def test_the_provider_prices_image_tokens_at_the_image_rate() -> None:
    flash = GEMINI.price("gemini-2.5-flash-image")
    pro = GEMINI.price("gemini-3-pro-image-preview")
    assert flash is not None and pro is not None
    assert flash.image_out_per_1m * 1290 // 1_000_000 == 38_700  # $0.039 an image, as Google says
    assert (
        pro.image_out_per_1m * 1120 // 1_000_000 == 134_400
        and pro.image_out_per_1m * 2000 // 10**6 == 240_000
    )
    assert GEMINI.capabilities("gemini-3-pro-image-preview").max_n == 1
