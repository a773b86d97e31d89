"""engines/seedream.py: Ark's body (size as WxH, one image, watermark off, references as data
URLs, 3.0's seed), Ark's errors as OpenAI's, and the models' size rules and prices."""

from __future__ import annotations

from typing import Any

import pytest

from imagegate.domain import ImageJob, InputImage
from imagegate.engines import seedream
from imagegate.engines.adapt import renderable
from imagegate.engines.upstream import OUT_OF_BALANCE_REASON, UpstreamConfig
from imagegate.errors import UpstreamError
from imagegate.payload import Payload
from tests.imaging import png


def reference(data: bytes) -> InputImage:
    return InputImage(Payload(data), "image/png", (8, 8), False, decode=lambda: None)  # type: ignore[arg-type, return-value]


def test_a_seedream_4_request_is_one_image_at_the_exact_size_without_a_watermark() -> None:
    job = ImageJob(model="client-name", prompt="a fox", width=1080, height=1920, n=3, seed=7)
    assert seedream.body("doubao-seedream-4-0-250828", job) == {
        "model": "doubao-seedream-4-0-250828",
        "prompt": "a fox",
        "size": "1080x1920",
        "response_format": "b64_json",
        "watermark": False,
        "sequential_image_generation": "disabled",
    }


def test_references_go_as_data_urls_and_seedream_3_takes_a_seed_instead() -> None:
    one, two = png(8, 8, seed=1), png(8, 8, seed=2)
    job = ImageJob(
        model="m", prompt="p", kind="edit", images=(reference(one), reference(two)), seed=2**31 + 5
    )
    sent = seedream.body("seedream-4-5-251128", job)
    assert sent["image"] == [seedream._data_url(reference(one)), seedream._data_url(reference(two))]
    assert sent["image"][0].startswith("data:image/png;base64,iVBOR")
    three = seedream.body("doubao-seedream-3-0-t2i-250415", ImageJob(model="m", prompt="p", seed=2**31 + 5))
    assert three["seed"] == 5 and "sequential_image_generation" not in three


def test_a_size_the_model_does_not_take_is_asked_at_the_closest_it_does() -> None:
    probe = ImageJob(model="m", prompt="p")  # 1024x1024, as the balance probe asks it of any model
    assert seedream.body("seedream-4-0-250828", probe)["size"] == "1024x1024"
    assert seedream.body("seedream-4-5-251128", probe)["size"] == "1920x1920"


@pytest.mark.parametrize(
    "code",
    ["InputTextSensitiveContentDetected", "InputImageSensitiveContentDetected",
     "OutputImageSensitiveContentDetected", "SensitiveContentDetected.Violence", "InputTextRiskDetection"],
)  # fmt: skip
def test_filtered_content_is_moderation_blocked(code: str) -> None:
    mapped = seedream.client_error({"error": {"code": code, "message": "sensitive", "type": "BadRequest"}})
    assert mapped is not None and mapped["error"]["code"] == "moderation_blocked"


def test_other_errors_keep_their_message_param_and_code() -> None:
    error: dict[str, Any] = {
        "code": "InvalidParameter",
        "message": "size is invalid",
        "param": "size",
        "type": "BadRequest",
    }
    assert seedream.client_error({"error": error}) == {
        "error": {
            "message": "size is invalid",
            "type": "invalid_request_error",
            "param": "size",
            "code": "InvalidParameter",
        }
    }
    assert seedream.client_error({"error": "text"}) is None


def test_the_models_size_rules_follow_their_pixel_floors() -> None:
    four, four_five = (
        seedream.SEEDREAM.capabilities("doubao-seedream-4-0-250828"),
        seedream.SEEDREAM.capabilities("seedream-4-5-251128"),
    )
    assert renderable(1080, 1080, four) and renderable(1280, 720, four) and not renderable(1024, 768, four)
    assert renderable(4096, 256, four) and not renderable(4352, 256, four)  # ratio 16 at most
    assert renderable(2560, 1440, four_five) and not renderable(1920, 1080, four_five)
    assert not seedream.SEEDREAM.capabilities("seedream-3-0-t2i-250415").edits
    assert seedream.SEEDREAM.capabilities("ep-20251201-abcde") == seedream.SEEDREAM_4


def test_prices_are_per_image() -> None:
    for model, micros in (("doubao-seedream-4-0-250828", 30_000), ("seedream-4-5-251128", 40_000)):
        price = seedream.SEEDREAM.price(model)
        assert price is not None and price.per_image == {"*": {"*": micros}}


def engine() -> seedream.SeedreamEngine:
    config = UpstreamConfig(
        name="ark", base_url="https://ark.test/api/v3", api_key="ark-0001", provider="seedream"
    )
    return seedream.SeedreamEngine(config, None, None)  # type: ignore[arg-type]


def test_a_failed_image_is_refused_when_filtered_and_retried_otherwise() -> None:
    filtered = {"error": {"code": "OutputImageSensitiveContentDetected", "message": "sensitive"}}
    with pytest.raises(UpstreamError) as blocked:
        engine()._refused([filtered])
    assert blocked.value.client_status == 400
    assert blocked.value.body()["error"]["code"] == "moderation_blocked"
    with pytest.raises(UpstreamError) as failed:
        engine()._refused([{"error": {"code": "InternalServiceError", "message": "try again"}}])
    assert failed.value.retryable and failed.value.client_status == 502
    engine()._refused([{"b64_json": "AA==", "size": "8x8"}])  # an image: nothing to refuse


def test_an_overdue_account_is_out_of_balance_and_a_rejected_key_is_not() -> None:
    overdue = {"error": {"code": "AccountOverdueError", "message": "overdue", "type": "Forbidden"}}
    assert engine()._failure(403, overdue, b"", None).disable_reason == OUT_OF_BALANCE_REASON
    denied = {"error": {"code": "AccessDenied", "message": "no access", "type": "Forbidden"}}
    assert "key rejected" in (engine()._failure(403, denied, b"", None).disable_reason or "")
    assert engine()._failure(403, {"error": "text"}, b"", None).disable_reason is not None
