"""engines/xai.py: sizes as xAI's aspect ratio and resolution, the body per model (quality on
2.0, nothing on grok-2-image, references as image or images), xAI's errors as OpenAI's, and its
wrong-key 400 and no-credits 403 taking the channel out of service."""

from __future__ import annotations

import math
from typing import Any

import pytest

from imagegate.domain import ImageJob, InputImage
from imagegate.engines import xai
from imagegate.engines.upstream import OUT_OF_BALANCE_REASON, UpstreamConfig
from imagegate.payload import Payload


def reference(data: bytes) -> InputImage:
    return InputImage(Payload(data), "image/jpeg", (8, 8), False, decode=lambda: None)  # type: ignore[arg-type, return-value]


def test_every_native_size_is_its_ratio_at_1k_or_twice_that_at_2k() -> None:
    assert (
        len(xai.NATIVE) == 26
        and xai.native(1408, 768) == ("16:9", "1k")
        and xai.native(1536, 2816) == ("9:16", "2k")
    )
    for size, (ratio, tier) in xai.NATIVE.items():
        width, height = map(int, size.split("x"))
        w, h = (float(x) for x in ratio.split(":"))
        assert abs(math.log(width / height * h / w)) < 0.07, size  # near: 3:4 is 896x1280
        assert xai.native(width, height) == (ratio, tier)


def test_another_size_gets_the_nearest_ratio_at_the_resolution_that_covers_it() -> None:
    assert xai.native(1200, 630) == ("16:9", "1k")
    assert xai.native(1600, 900) == ("16:9", "2k")
    assert xai.native(700, 1400) == ("1:2", "1k")
    assert xai.native(1000, 2000) == ("1:2", "2k")


def test_the_body_per_model() -> None:
    job = ImageJob(model="grok", prompt="a fox", width=2048, height=2048, n=3, quality="high")
    assert xai.body("grok-imagine-image", job) == {
        "model": "grok-imagine-image", "prompt": "a fox", "n": 3, "response_format": "b64_json",
        "aspect_ratio": "1:1", "resolution": "2k",
    }  # fmt: skip
    assert xai.body("grok-imagine-image-2.0", job)["quality"] == "medium"
    assert xai.body("grok-2-image", job) == {
        "model": "grok-2-image",
        "prompt": "a fox",
        "n": 3,
        "response_format": "b64_json",
    }


def test_one_reference_is_image_several_are_images() -> None:
    one = ImageJob(model="g", prompt="p", kind="edit", images=(reference(b"\xff\xd8\xff1"),))
    assert xai.body("grok-imagine-image", one)["image"] == {
        "url": "data:image/jpeg;base64,/9j/MQ==",
        "type": "image_url",
    }
    two = ImageJob(model="g", prompt="p", kind="edit", images=(reference(b"a"), reference(b"b")))
    sent = xai.body("grok-imagine-image", two)
    assert "image" not in sent and [i["url"] for i in sent["images"]] == [
        "data:image/jpeg;base64,YQ==",
        "data:image/jpeg;base64,Yg==",
    ]


@pytest.mark.parametrize(
    ("answer", "code", "param"),
    [
        (
            {"code": "Client specified an invalid argument", "error": "Argument not supported: size"},
            None,
            "size",
        ),
        (
            {"code": "x", "error": "Generated image rejected by content moderation."},
            "moderation_blocked",
            None,
        ),
        (
            {"error": {"message": "Your request was rejected by our content policy"}},
            "moderation_blocked",
            None,
        ),
    ],
)
def test_errors_as_openais(answer: dict[str, Any], code: str | None, param: str | None) -> None:
    mapped = xai.client_error(answer)
    assert mapped is not None and (mapped["error"]["code"], mapped["error"]["param"]) == (code, param)
    assert xai.client_error({"code": "x"}) is None


def engine() -> xai.XaiEngine:
    config = UpstreamConfig(name="x", base_url="https://api.x.ai/v1", api_key="xai-secret", provider="xai")
    return xai.XaiEngine(config, None, None)  # type: ignore[arg-type]


def test_a_wrong_key_and_a_team_without_credits_take_the_channel_out() -> None:
    wrong = {"code": "Client specified an invalid argument", "error": "Incorrect API key provided: xa***et."}
    refused = engine()._failure(400, wrong, b"", None)
    assert refused.retryable and "key rejected" in (refused.disable_reason or "")
    broke = {"code": "forbidden", "error": "Your team has no credits yet. Purchase credits at console.x.ai."}
    assert engine()._failure(403, broke, b"", None).disable_reason == OUT_OF_BALANCE_REASON
    plain = engine()._failure(400, {"code": "x", "error": "Argument not supported: size"}, b"", None)
    assert not plain.retryable and plain.disable_reason is None and plain.client_status == 400


def test_prices_are_per_image_and_by_quality_on_2_0() -> None:
    price = xai.XAI.price("grok-imagine-image-2.0")
    assert price is not None and price.per_image == {"low": {"*": 40_000}, "*": {"*": 60_000}}
    base = xai.XAI.price("grok-imagine-image")
    assert base is not None and base.per_image == {"*": {"*": 20_000}}
