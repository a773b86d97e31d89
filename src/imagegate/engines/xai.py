"""xAI (Grok Imagine) images: OpenAI-like, without sizes.

From xAI's image guide and REST reference (https://docs.x.ai/developers/model-capabilities/images/generation,
https://docs.x.ai/developers/rest-api-reference/inference/images), read 2026-12-03 through the pages
and pull requests that quote them (hermes-agent PR #9186, celeste-python PR #381, Runware's model
pages for the pixel sizes):

- `POST {base}/images/generations`, `Authorization: Bearer`, base `https://api.x.ai/v1`. Body
  `model`, `prompt`, `n` (1-10), `response_format` (`b64_json`; a `url` is temporary). No `size`,
  `quality` or `style` ("Argument not supported: size"); Grok Imagine models take `aspect_ratio`
  (1:1, 3:4, 4:3, 9:16, 16:9, 2:3, 3:2, 9:19.5, 19.5:9, 9:20, 20:9, 1:2, 2:1) and `resolution`
  (1k, 2k), grok-imagine-image-2.0 also `quality` (low, medium).
- Edits: `POST {base}/images/edits`, JSON only (the OpenAI SDK's multipart edit is refused), the
  reference as `image: {"url", "type": "image_url"}` (a URL or a data URL), several (up to 3) as
  `images: [...]`.
- Answer `{"data": [{"b64_json" | "url", "mime_type": "image/jpeg", "revised_prompt",
  "respect_moderation"}]}`: JPEG, no usage (priced per image). An image that failed moderation
  comes back 200 with `respect_moderation: false`: answered as OpenAI's 400 `moderation_blocked`.
- Errors `{"code": "<status phrase>", "error": "<message>"}`. A wrong key is a 400 ("Incorrect API
  key provided: ..."), treated as 401; a team without credits a 403 (out of balance).
- Pixel sizes per ratio at 1k (2k doubles both edges): 1:1 1024x1024, 3:4 896x1280, 9:16 768x1408,
  2:3 864x1296, 9:19.5 576x1248, 9:20 576x1280, 1:2 704x1408 and their transposes. grok-2-image
  (the older model, no ratios, no edits) answers 1024x768 (*unverified*).
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import replace
from typing import Any

from imagegate.domain import ImageJob, InputImage
from imagegate.engines.base import Capabilities
from imagegate.engines.catalog import Provider
from imagegate.engines.seedream import PerImageEngine
from imagegate.engines.upstream import KEY_REJECTED_REASON, OUT_OF_BALANCE_REASON
from imagegate.errors import InvalidRequest, ModerationBlocked, UpstreamError
from imagegate.pricing import ModelPrice

# Aspect ratio -> its 1k size; 2k doubles both edges.
RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
    "2:3": (864, 1296),
    "3:2": (1296, 864),
    "9:19.5": (576, 1248),
    "19.5:9": (1248, 576),
    "9:20": (576, 1280),
    "20:9": (1280, 576),
    "1:2": (704, 1408),
    "2:1": (1408, 704),
}
TIERS = ((1, "1k"), (2, "2k"))
NATIVE: dict[str, tuple[str, str]] = {
    f"{w * k}x{h * k}": (ratio, tier) for ratio, (w, h) in RATIOS.items() for k, tier in TIERS
}
MODERATED = "Generated image rejected by content moderation."

GROK_IMAGINE = Capabilities(
    sizes=tuple(NATIVE),
    formats=("jpeg",),
    alpha=False,
    max_n=10,
    masks=False,
    max_images=3,
    streaming=False,
    qualities=(),
)
GROK_2_IMAGE = replace(GROK_IMAGINE, sizes=("1024x768",), edits=False, max_images=0)
MODELS = {
    "grok-imagine-image": GROK_IMAGINE,  # -pro and -quality (retired into 2.0) too
    "grok-imagine-image-2": replace(GROK_IMAGINE, qualities=("low", "medium")),
    "grok-2-image": GROK_2_IMAGE,
}


def _per_image(by_quality: dict[str, int]) -> ModelPrice:
    return ModelPrice(
        text_in_per_1m=0,
        image_in_per_1m=0,
        image_out_per_1m=0,
        per_image={quality: {"*": micros} for quality, micros in by_quality.items()},
    )


# Per image, micro-dollars. grok-imagine-image $0.02 and -pro $0.07 (hermes-agent PR #9186, Runware);
# grok-imagine-image-2.0 at 1k $0.04 low, $0.06 medium (2k: $0.06, $0.08; reference images $0.01
# each, not counted here) from resellers' tables (sub2api PR #5558, pollinations PR #13373);
# grok-2-image $0.07. All *unverified* against xAI's own pricing page.
PRICES = {
    "grok-imagine-image": _per_image({"*": 20_000}),
    "grok-imagine-image-pro": _per_image({"*": 70_000}),
    "grok-imagine-image-2": _per_image({"low": 40_000, "*": 60_000}),
    "grok-2-image": _per_image({"*": 70_000}),
}


def native(width: int, height: int) -> tuple[str, str]:
    """The aspect ratio and resolution for a size: its own when it is one of the native sizes, else
    the nearest ratio, at 2k when the size is larger than that ratio's 1k."""
    if f"{width}x{height}" in NATIVE:
        return NATIVE[f"{width}x{height}"]
    target = math.log(width / height)
    ratio = min(RATIOS, key=lambda r: abs(math.log(RATIOS[r][0] / RATIOS[r][1]) - target))
    w, h = RATIOS[ratio]
    return ratio, "2k" if width > w or height > h else "1k"


def _data_url(image: InputImage) -> dict[str, str]:
    data = base64.b64encode(b"".join(image.source.chunks())).decode()
    return {"url": f"data:{image.media_type};base64,{data}", "type": "image_url"}


def body(model: str, job: ImageJob) -> dict[str, Any]:
    """xAI's request for `job` from `model` (the upstream name)."""
    out: dict[str, Any] = {"model": model, "prompt": job.prompt, "n": job.n, "response_format": "b64_json"}
    if not model.startswith("grok-2-image"):
        out["aspect_ratio"], out["resolution"] = native(job.width, job.height)
    if model.startswith("grok-imagine-image-2"):
        out["quality"] = "low" if job.quality == "low" else "medium"
    references = [_data_url(image) for image in job.images]
    if len(references) == 1:
        out["image"] = references[0]
    elif references:
        out["images"] = references
    return out


def _message(answer: Any) -> str | None:
    error = answer.get("error") if isinstance(answer, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) and message else None


def client_error(answer: Any) -> dict[str, Any] | None:
    """xAI's error body as OpenAI's: a moderation refusal is `moderation_blocked`."""
    message = _message(answer)
    if message is None:
        return None
    if "moderation" in message.lower() or "content policy" in message.lower():
        return ModerationBlocked(message).body()
    unsupported = re.search(r"Argument not supported: (\w+)", message)
    return InvalidRequest(message, param=unsupported.group(1) if unsupported else None).body()


class XaiEngine(PerImageEngine):
    kind = "xAI"
    client_error = staticmethod(client_error)

    def _body(self, job: ImageJob) -> dict[str, Any]:
        return body(self.channel.upstream_model(job.model), job)

    def _refused(self, items: list[dict[str, Any]]) -> None:
        if any(item.get("respect_moderation") is False for item in items):
            raise self._failure(400, {"code": "moderation", "error": MODERATED}, b"", None)

    def _failure(self, status: int, body: Any, raw: bytes, retry_after_s: float | None) -> UpstreamError:
        error = super()._failure(status, body, raw, retry_after_s)
        message = (_message(body) or "").lower()
        if status in (400, 401) and message.startswith("incorrect api key"):
            error.disable_reason = KEY_REJECTED_REASON.format(status=status)
            error.retryable = True  # another channel may serve it
        elif status == 403 and any(word in json.dumps(body).lower() for word in ("credit", "spending limit")):
            error.disable_reason = OUT_OF_BALANCE_REASON
        return error


XAI = Provider(
    kind="xai",
    engine=XaiEngine,
    base_url="https://api.x.ai/v1",
    describe="xAI Grok Imagine (aspect ratios at 1k/2k, JPEG, edits with up to 3 references)",
    models=MODELS,
    default=GROK_IMAGINE,
    prices=PRICES,
    prices_read="hermes-agent PR #9186, sub2api PR #5558 (resellers' tables), 2026-12-03: unverified",
)
