"""ByteDance Seedream on Volcengine Ark (and BytePlus ModelArk, the same API outside China).

From the Ark image generation API reference (https://www.volcengine.com/docs/82379/1541523; its
BytePlus twin https://docs.byteplus.com/en/docs/ModelArk/1541523) and the common error codes
(https://docs.byteplus.com/en/docs/ModelArk/1299023), read 2026-12-03 through the API mirrors that
quote them (302.ai, Novita, Evolink) where the pages themselves would not render:

- `POST {base}/images/generations`, `Authorization: Bearer`; base
  `https://ark.cn-beijing.volces.com/api/v3` (BytePlus: `https://ark.ap-southeast.bytepluses.com/api/v3`).
- Body: `model`, `prompt`, `size` ("WxH" within the model's limits, or 1K/2K/4K), `image` (URLs
  or data URLs; the references of an edit, up to 14), `sequential_image_generation` ("disabled":
  one image per call, so `n` is fanned out), `response_format` (`b64_json`; a `url` lasts 24 h),
  `watermark` (true unless told: false here), `seed` (3.0 only).
- Sizes: Seedream 4.0 any WxH of 1280x720 to 4096x4096 pixels, aspect ratio 1/16 to 16; 4.5 and
  5.0 from 2560x1440 pixels; 3.0 edges 512 to 2048. Output JPEG, no transparency.
- Answer `{"model", "created", "data": [{"b64_json" | "url", "size"}], "usage":
  {"generated_images", "output_tokens", "total_tokens"}}`; a failed image in `data` carries
  `error{code, message}`. Its tokens (W*H/256) are Ark's own unit, billed per image: the gateway
  keeps its own token count for the key and prices the operator's cost per image.
- Errors `{"error": {"code", "message", "param", "type"}}`: 400 `InvalidParameter`, 400
  `Input|OutputText|ImageSensitiveContentDetected` (and `*RiskDetection`) for filtered content,
  answered as OpenAI's `moderation_blocked`; 401 `AuthenticationError`; 403 `AccountOverdueError`
  (out of balance); 429 rate limits.
- The key is checked with `GET {base}/models`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import orjson

from imagegate.domain import FinalImage, ImageJob, InputImage
from imagegate.engines.adapt import closest
from imagegate.engines.base import Capabilities, SizeRule
from imagegate.engines.catalog import Provider
from imagegate.engines.openai_wire import image_bytes, scrub
from imagegate.engines.upstream import OUT_OF_BALANCE_REASON, UpstreamEngine
from imagegate.errors import InvalidRequest, ModerationBlocked, UpstreamError
from imagegate.images.encode import MEDIA_TYPES, sniff_format
from imagegate.pricing import ModelPrice

SEED_LIMIT = 2**31  # Ark's seed is within [-1, 2147483647]
# Error codes that mean the prompt, a reference or the result was filtered.
FILTERED = ("SensitiveContentDetected", "RiskDetection")

# Free-form sizes: any edges, 1280x720 to 4096x4096 pixels (so the long edge is at most 16384).
SEEDREAM_4_RULE = SizeRule(multiple=1, max_edge=16384, max_ratio=16, min_pixels=921_600, max_pixels=4096**2)
SEEDREAM_4 = Capabilities(
    size_rule=SEEDREAM_4_RULE,
    formats=("jpeg",),
    alpha=False,
    max_n=1,
    masks=False,
    max_images=14,
    streaming=False,
    qualities=(),
)
SEEDREAM_4_5 = replace(SEEDREAM_4, size_rule=replace(SEEDREAM_4_RULE, min_pixels=2560 * 1440))
SEEDREAM_3 = replace(
    SEEDREAM_4,
    size_rule=SizeRule(multiple=1, max_edge=2048, max_ratio=4.0, min_pixels=512**2, max_pixels=2048**2),
    edits=False,
    max_images=0,
)


def _per_image(micros: int) -> ModelPrice:
    return ModelPrice(text_in_per_1m=0, image_in_per_1m=0, image_out_per_1m=0, per_image={"*": {"*": micros}})


def _both(name: str, value: Any) -> dict[str, Any]:
    """Volcengine's model names are BytePlus's with a `doubao-` prefix."""
    return {name: value, f"doubao-{name}": value}


MODELS = {
    **_both("seedream-3-0", SEEDREAM_3),
    **_both("seedream-4-0", SEEDREAM_4),
    **_both("seedream-4-5", SEEDREAM_4_5),
    **_both("seedream-5-0", SEEDREAM_4_5),
}
# BytePlus's USD list prices per image (docs.byteplus.com/en/docs/ModelArk/1544106): 4.0 $0.03,
# 4.5 $0.04. 3.0 ($0.03) and 5.0 lite ($0.035) from resellers quoting it: *unverified*.
PRICES = {
    **_both("seedream-3-0", _per_image(30_000)),
    **_both("seedream-4-0", _per_image(30_000)),
    **_both("seedream-4-5", _per_image(40_000)),
    **_both("seedream-5-0", _per_image(35_000)),
}


def _data_url(image: InputImage) -> str:
    return f"data:{image.media_type};base64,{base64.b64encode(b''.join(image.source.chunks())).decode()}"


def body(model: str, job: ImageJob) -> dict[str, Any]:
    """The Ark request for one image of `job` from `model` (the upstream name). The size is the
    job's, which the gateway has adapted to the model; a job that was not (the channel's balance
    probe asks 1024x1024 of any model) is asked at the closest size the model takes."""
    width, height = closest(job.width, job.height, SEEDREAM.capabilities(model))
    out: dict[str, Any] = {
        "model": model,
        "prompt": job.prompt,
        "size": f"{width}x{height}",
        "response_format": "b64_json",
        "watermark": False,
    }
    if "seedream-3" in model:
        out["seed"] = job.seed % SEED_LIMIT
    else:
        out["sequential_image_generation"] = "disabled"
    if job.images:
        out["image"] = [_data_url(image) for image in job.images]
    return out


def _code(answer: Any) -> str | None:
    """The code of an Ark error body (or of a failed image in `data`)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error.get("code") or "") if isinstance(error, dict) else None


def client_error(answer: Any) -> dict[str, Any] | None:
    """Ark's error body as OpenAI's: filtered content is `moderation_blocked`."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None
    code = str(error.get("code") or "")
    message = str(error.get("message") or "Ark refused the request.")
    if any(word in code for word in FILTERED):
        return ModerationBlocked(message).body()
    param = error.get("param")
    return InvalidRequest(message, param=str(param) if param else None, code=code or None).body()


class PerImageEngine(UpstreamEngine):
    """A provider that answers OpenAI's `data[]` of images (b64_json or url) but bills per image,
    with no usage worth relaying (Seedream, xAI): JSON requests, edits included. `_refused` raises
    for an answer that carries a refusal instead of an image; `client_error` turns the provider's
    error body into OpenAI's."""

    client_error: Callable[[Any], dict[str, Any] | None] = staticmethod(lambda _body: None)

    def _client_error(self, status: int, body: Any) -> dict[str, Any] | None:  # noqa: ARG002
        mapped = self.client_error(body)
        return None if mapped is None else scrub(mapped, self.channel.api_key)

    async def _send(self, job: ImageJob) -> aiohttp.ClientResponse:
        return await self._post_json(self._url(job), self._body(job), self._headers())

    def _refused(self, items: list[dict[str, Any]]) -> None:
        """Raise when the answer refuses to deliver an image."""

    async def _complete(self, response: aiohttp.ClientResponse, job: ImageJob) -> list[FinalImage]:
        try:
            items = orjson.loads(await response.read())["data"]
            if not items or not all(isinstance(item, dict) for item in items):
                raise KeyError("data")
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error("answered with a malformed body", retryable=True) from exc
        self._refused(items)
        images = []
        for i, item in enumerate(items[: job.n]):
            try:
                found = image_bytes(item)
            except (KeyError, ValueError) as exc:
                raise self._error("answered with a malformed image", retryable=True) from exc
            data, b64 = found if isinstance(found, tuple) else (await self._fetch(found, job), None)
            made = sniff_format(data[:16]) or "jpeg"
            images.append(FinalImage(index=i, encoded=data, b64=b64, media_type=MEDIA_TYPES[made]))
        return images


class SeedreamEngine(PerImageEngine):
    kind = "Seedream (Volcengine Ark)"
    client_error = staticmethod(client_error)

    def _body(self, job: ImageJob) -> dict[str, Any]:
        return body(self.channel.upstream_model(job.model), job)

    def _url(self, job: ImageJob) -> str:  # noqa: ARG002
        # An edit is a generation with reference images, on the one path.
        return self.channel.base_url.rstrip("/") + "/images/generations"

    def _refused(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            code = _code(item)
            if code is None:
                continue
            if any(word in code for word in FILTERED):  # the image it made was filtered
                raise self._failure(400, item, b"", None)
            raise self._error(f"failed to make the image ({code[:100]})", retryable=True)

    def _failure(self, status: int, body: Any, raw: bytes, retry_after_s: float | None) -> UpstreamError:
        error = super()._failure(status, body, raw, retry_after_s)
        if status == 403 and _code(body) == "AccountOverdueError":
            error.disable_reason = OUT_OF_BALANCE_REASON  # probed with a generation, not a key check
        return error


SEEDREAM = Provider(
    kind="seedream",
    engine=SeedreamEngine,
    base_url="https://ark.cn-beijing.volces.com/api/v3",
    describe="ByteDance Seedream on Volcengine Ark (or BytePlus ModelArk: https://ark.ap-southeast.bytepluses.com/api/v3)",
    models=MODELS,
    default=SEEDREAM_4,  # an Ark endpoint id (ep-...) names no model: taken as Seedream 4.0
    prices=PRICES,
    prices_read="docs.byteplus.com/en/docs/ModelArk/1544106 (USD), 2026-12-03",
)
