"""Gemini API image models ("Nano Banana"): one ImageJob as one `generateContent` call.

Read 2026-12-03: https://ai.google.dev/gemini-api/docs/image-generation (sizes, aspect ratios,
`imageConfig`, reference images), https://ai.google.dev/api/generate-content (request and
response bodies, `usageMetadata`, `finishReason`, `promptFeedback`),
https://ai.google.dev/gemini-api/docs/troubleshooting (error bodies and statuses),
https://ai.google.dev/gemini-api/docs/pricing (list prices).

Wire: `POST {base}/models/{model}:generateContent` with the key in `x-goog-api-key`; the body
`contents[{role: "user", parts: [{text}, {inline_data: {mime_type, data}}...]}]` (reference
images as base64, after the prompt) and `generationConfig{responseModalities: ["IMAGE"],
imageConfig{aspectRatio, imageSize}}`. The model renders a fixed size per aspect ratio and tier
(the tables below); `imageSize` exists on Gemini 3 models only, and 2.5 Flash Image refuses it.
Each call makes one image: `n` is fanned out by the gateway (max_n 1). The answer's images are
`candidates[].content.parts[].inlineData{mimeType, data}`; parts marked `thought` (Gemini 3's
interim drafts) are skipped. Usage is `usageMetadata`: prompt tokens by modality (TEXT, IMAGE)
and candidate tokens by modality (IMAGE), as Usage(text_in, image_in, image_out). Text and
thinking output tokens (Gemini 3 bills them at the text rate) have no place in Usage and are
left out. A blocked prompt (`promptFeedback.blockReason`) or a candidate ended for safety with
no image is 400 `moderation_blocked`.

Google's errors are `{"error": {"code", "message", "status", "details"}}`; GoogleEngine maps
them for this adapter and Vertex's (engines/vertex.py): a key Google does not know is a 400
API_KEY_INVALID, which disables the channel like a 401/403; BILLING_DISABLED, and a quota whose
limit is 0 (a project that has no paid access to the model), take the out-of-balance path; any
other 429 RESOURCE_EXHAUSTED is a rate limit, retried after its RetryInfo delay.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pybase64

from imagegate.domain import FinalImage, ImageJob, InputImage
from imagegate.engines.adapt import closest
from imagegate.engines.base import Capabilities
from imagegate.engines.catalog import Provider, longest_prefix
from imagegate.engines.openai_wire import decoded, scrub
from imagegate.engines.upstream import (
    KEY_REJECTED_REASON,
    OUT_OF_BALANCE_REASON,
    RETRYABLE_STATUS,
    UpstreamEngine,
)
from imagegate.errors import UpstreamError
from imagegate.images.tokens import MAX_TOKENS, Usage
from imagegate.pricing import ModelPrice

BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


@dataclass(frozen=True, slots=True)
class SizeGrid:
    """A model's native sizes: "WxH" -> (aspect ratio, tier; None where the model takes no tier)."""

    sizes: Mapping[str, tuple[str, str | None]]

    @classmethod
    def scaled(cls, base: Mapping[str, tuple[int, int]], tiers: Mapping[str | None, float]) -> SizeGrid:
        """Each tier's sizes as the base (1K) sizes times the tier's factor, as Google's tables are."""
        return cls(
            {
                f"{round(w * factor)}x{round(h * factor)}": (ratio, tier)
                for tier, factor in tiers.items()
                for ratio, (w, h) in base.items()
            }
        )

    def capabilities(self, **others: Any) -> Capabilities:
        return Capabilities(sizes=tuple(self.sizes), **others)

    def native(self, width: int, height: int) -> tuple[str, str | None]:
        """(aspect ratio, tier) to ask for width x height: its own, or the closest native size's
        (a size outside the grid comes only from an operator's capability override)."""
        found = self.sizes.get(f"{width}x{height}")
        if found is None:
            w, h = closest(width, height, Capabilities(sizes=tuple(self.sizes)))
            found = self.sizes[f"{w}x{h}"]
        return found


# Gemini 2.5 Flash Image: one size per aspect ratio (1290 output tokens each), no imageSize.
FLASH_25 = {"1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
            "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
            "16:9": (1344, 768), "21:9": (1536, 672)}  # fmt: skip
# Gemini 3 image models at 1K; their 512, 2K and 4K tiers are these times 0.5, 2 and 4 (Google's
# table says 792x168 for 21:9 at 512: a typo for 792x336, half of 1584x672).
GEMINI_3 = {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
            "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
            "16:9": (1376, 768), "21:9": (1584, 672)}  # fmt: skip
# Gemini 3.1 Flash (Lite) Image add four extreme ratios.
GEMINI_31 = {**GEMINI_3, "1:4": (512, 2048), "4:1": (2048, 512), "1:8": (384, 3072), "8:1": (3072, 384)}

GRIDS = {
    "gemini-2.5-flash-image": SizeGrid.scaled(FLASH_25, {None: 1}),
    "gemini-3-pro-image": SizeGrid.scaled(GEMINI_3, {"1K": 1, "2K": 2, "4K": 4}),
    "gemini-3.1-flash-image": SizeGrid.scaled(GEMINI_31, {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}),
    "gemini-3.1-flash-lite-image": SizeGrid.scaled(GEMINI_31, {"512": 0.5, "1K": 1}),
}
DEFAULT_GRID = GRIDS["gemini-2.5-flash-image"]  # an image model not listed: aspect ratio only
# The reference images each model takes (2.5 Flash Image works best with up to 3; Gemini 3: 14).
MAX_IMAGES = {"gemini-2.5-flash-image": 3}
_COMMON: dict[str, Any] = dict(
    formats=("png",), alpha=False, max_n=1, edits=True, masks=False, streaming=False, qualities=()
)
MODELS = {
    name: grid.capabilities(max_images=MAX_IMAGES.get(name, 14), **_COMMON) for name, grid in GRIDS.items()
}


def _per_1m(text_and_image_in: float, image_out: float) -> ModelPrice:
    """A price from dollars per 1M tokens (input is one price for text and images)."""
    inputs = round(text_and_image_in * 1_000_000)
    return ModelPrice(
        text_in_per_1m=inputs, image_in_per_1m=inputs, image_out_per_1m=round(image_out * 1_000_000)
    )


# ai.google.dev/gemini-api/docs/pricing (Standard, paid tier), read 2026-12-03: 2.5 Flash Image
# $30/1M output image tokens ($0.039 an image), 3 Pro Image $120/1M ($0.134 at 1K-2K, $0.24 at 4K),
# 3.1 Flash Image $60/1M, 3.1 Flash Lite Image $30/1M.
PRICES = {
    "gemini-2.5-flash-image": _per_1m(0.30, 30),
    "gemini-3-pro-image": _per_1m(2.00, 120),
    "gemini-3.1-flash-image": _per_1m(0.50, 60),
    "gemini-3.1-flash-lite-image": _per_1m(0.25, 30),
}

# finishReason / blockReason values that mean a content filter refused (not a failure to retry).
BLOCKED = frozenset(
    {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
     "RECITATION", "IMAGE_RECITATION"}
)  # fmt: skip
HARM_CATEGORIES = ("HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
                   "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT")  # fmt: skip


def grid_for(model: str) -> SizeGrid:
    # The same longest-prefix rule as the capabilities (catalog.py), so both name one table.
    return longest_prefix(GRIDS, model) or DEFAULT_GRID


def image_config(model: str, width: int, height: int) -> dict[str, str]:
    """`generationConfig.imageConfig` for a width x height image."""
    ratio, tier = grid_for(model).native(width, height)
    return {"aspectRatio": ratio, **({"imageSize": tier} if tier else {})}


def request_body(job: ImageJob, model: str, images: list[tuple[str, str]]) -> dict[str, Any]:
    """The generateContent body; `images` are the reference images as (mime type, base64)."""
    parts: list[dict[str, Any]] = [{"text": job.prompt}]
    parts += [{"inline_data": {"mime_type": mime, "data": data}} for mime, data in images]
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": image_config(model, job.width, job.height),
        },
    }
    if job.moderation == "low":  # OpenAI's "less restrictive filtering"
        body["safetySettings"] = [{"category": c, "threshold": "BLOCK_ONLY_HIGH"} for c in HARM_CATEGORIES]
    return body


def inline(images: tuple[InputImage, ...]) -> list[tuple[str, str]]:
    """The reference images as (mime type, base64): read whole (the JSON body holds them anyway)."""
    return [(img.media_type, pybase64.b64encode(b"".join(img.source.chunks())).decode()) for img in images]


def usage(raw: Any) -> Usage | None:
    """`usageMetadata` as Usage; None when absent or unreadable (the gateway's own count bills)."""
    if not isinstance(raw, dict):
        return None
    try:
        prompt = _by_modality(raw.get("promptTokensDetails"))
        made = _by_modality(raw.get("candidatesTokensDetails"))
        found = Usage(
            text_in=prompt.get("TEXT", 0 if prompt else int(raw.get("promptTokenCount", 0))),
            image_in=prompt.get("IMAGE", 0),
            image_out=made.get("IMAGE", 0 if made else int(raw.get("candidatesTokenCount", 0))),
        )
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    counts = (found.text_in, found.image_in, found.image_out)
    return found if all(0 <= n <= MAX_TOKENS for n in counts) else None


def _by_modality(details: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in details or ():
        name = str(item.get("modality", "")).upper()
        out[name] = out.get(name, 0) + int(item.get("tokenCount", 0))
    return out


@dataclass(frozen=True, slots=True)
class Answer:
    """A generateContent answer: its images as (bytes, base64 text or None, mime type)."""

    images: list[tuple[bytes, str | None, str]]
    usage: Usage | None
    refused: str | None  # the blockReason or finishReason of an answer without an image
    blocked: bool = False  # `refused` is a content filter's


def parse_answer(body: Any) -> Answer:
    """Raises ValueError, KeyError, TypeError or AttributeError on a malformed body."""
    images = []
    reasons = []
    for candidate in body.get("candidates") or ():
        reasons.append(str(candidate.get("finishReason") or ""))
        for part in (candidate.get("content") or {}).get("parts") or ():
            found = part.get("inlineData") or part.get("inline_data")
            if found and not part.get("thought"):
                mime = str(found.get("mimeType") or found.get("mime_type") or "")
                if mime.startswith("image/"):
                    images.append((*decoded(found["data"]), mime))
    feedback = body.get("promptFeedback") or {}
    found = usage(body.get("usageMetadata"))
    if images:
        return Answer(images, found, None)
    if feedback.get("blockReason"):
        return Answer(images, found, str(feedback["blockReason"]), blocked=True)
    why = next((r for r in reasons if r not in ("", "STOP")), reasons[0] if reasons else "no candidates")
    return Answer(images, found, why or "no finishReason", blocked=why in BLOCKED)


# --- Google's errors, shared with engines/vertex.py ---------------------------------------------

_TYPES = {
    "INVALID_ARGUMENT": ("invalid_request_error", "invalid_value"),
    "OUT_OF_RANGE": ("invalid_request_error", "invalid_value"),
    "FAILED_PRECONDITION": ("invalid_request_error", "failed_precondition"),
    "NOT_FOUND": ("invalid_request_error", "model_not_found"),
    "UNAUTHENTICATED": ("invalid_request_error", "invalid_api_key"),
    "PERMISSION_DENIED": ("invalid_request_error", "permission_denied"),
    "RESOURCE_EXHAUSTED": ("requests", "rate_limit_exceeded"),
}
_RAI = re.compile(r"responsible ai", re.I)  # Imagen refuses a prompt with a 400 that says so
_DELAY = re.compile(r"(?:retry in |^)(\d+(?:\.\d+)?)s", re.I)


def google_error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def openai_error(status: int, body: Any, secret: str) -> dict[str, Any] | None:
    """A Google error body as OpenAI's `{"error": {message, type, param, code}}` (None: not one)."""
    error = google_error(body)
    if not error:
        return None
    message = str(error.get("message") or f"The provider answered HTTP {status}.")
    kind, code = _TYPES.get(str(error.get("status")), ("invalid_request_error", None))
    if status == 400 and _RAI.search(message):
        kind, code = "image_generation_user_error", "moderation_blocked"
    if status >= 500:
        kind, code = "server_error", None
    return {"error": scrub({"message": message, "type": kind, "param": None, "code": code}, secret)}


@dataclass(frozen=True, slots=True)
class Fault:
    """What a Google error means for the channel."""

    disable: str | None = None  # "key" (rejected) or "balance" (cannot pay)
    retryable: bool = False  # not the client's fault although a 4xx
    retry_after_s: float | None = None


def classify(status: int, body: Any) -> Fault:
    error = google_error(body)
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    reasons = {str(d.get("reason")) for d in details}
    message = str(error.get("message") or "")
    delay = next((_seconds(d.get("retryDelay")) for d in details if "retryDelay" in d), None)
    if delay is None and status == 429:
        delay = _seconds(message)
    if "BILLING_DISABLED" in reasons or (status == 400 and "billing" in message.lower()):
        return Fault("balance")
    if "API_KEY_INVALID" in reasons or status in (401, 403):
        return Fault("key")
    if status == 429 and _no_quota(details, message):
        return Fault("balance")  # a quota of 0: the project has no (paid) access to the model
    return Fault(retryable=str(error.get("status")) == "FAILED_PRECONDITION", retry_after_s=delay)


def _no_quota(details: list[dict[str, Any]], message: str) -> bool:
    violations = [v for d in details for v in d.get("violations") or () if isinstance(v, dict)]
    return any(str(v.get("quotaValue")) == "0" for v in violations) or "limit: 0," in message


def _seconds(text: Any) -> float | None:
    found = _DELAY.search(str(text or "").strip())
    return float(found.group(1)) if found else None


class GoogleEngine(UpstreamEngine):
    """What Google's APIs share: the API key header and the errors (the module docstring)."""

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.channel.api_key}

    def _failure(self, status: int, body: Any, raw: bytes, retry_after_s: float | None) -> UpstreamError:  # noqa: ARG002
        fault = classify(status, body)
        reason = {"key": KEY_REJECTED_REASON.format(status=status), "balance": OUT_OF_BALANCE_REASON}
        disable = reason.get(fault.disable or "")
        return UpstreamError(
            f"The upstream provider answered HTTP {status}.",
            status=status,
            retryable=status in RETRYABLE_STATUS or fault.retryable or disable is not None,
            channel=self.channel.name,
            upstream_body=self._client_error(status, body),
            disable_reason=disable,
            retry_after_s=retry_after_s if retry_after_s is not None else fault.retry_after_s,
        )

    def _client_error(self, status: int, body: Any) -> dict[str, Any] | None:
        return openai_error(status, body, self.channel.api_key)

    def _blocked(self, why: str) -> UpstreamError:
        """A prompt or image the provider's content filter refused: the client's 400."""
        return UpstreamError(
            "The upstream provider's content filter refused the request.",
            status=400,
            retryable=False,
            channel=self.channel.name,
            upstream_body={
                "error": {
                    "message": f"Your request was rejected by the image provider's safety system ({why}).",
                    "type": "image_generation_user_error",
                    "param": None,
                    "code": "moderation_blocked",
                }
            },
        )

    async def _post(self, job: ImageJob, body: dict[str, Any]) -> aiohttp.ClientResponse:
        return await self._post_json(self._url(job), body, self._headers())


class GeminiEngine(GoogleEngine):
    """One Gemini API channel (see the module docstring)."""

    kind = "Gemini API"

    def _url(self, job: ImageJob) -> str:
        model = quote(self.channel.upstream_model(job.model), safe="")
        return f"{self.channel.base_url.rstrip('/')}/models/{model}:generateContent"

    async def _send(self, job: ImageJob) -> aiohttp.ClientResponse:
        # Reference images go inline as base64: read and encoded off the event loop (up to 20 MB).
        images = await asyncio.to_thread(inline, job.images) if job.images else []
        return await self._post(job, request_body(job, self.channel.upstream_model(job.model), images))

    async def _complete(self, response: aiohttp.ClientResponse, job: ImageJob) -> list[FinalImage]:
        raw = await response.read()
        try:
            answer = parse_answer(orjson.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._error("answered with a malformed body", retryable=True) from exc
        if answer.refused is not None:
            if answer.blocked:
                raise self._blocked(answer.refused)
            raise self._error(f"answered without an image ({answer.refused})", retryable=True)
        return [
            FinalImage(
                index=i,
                encoded=data,
                b64=b64,
                media_type=mime,
                usage=answer.usage if i == 0 or answer.usage is None else Usage(),
            )
            for i, (data, b64, mime) in enumerate(answer.images[: job.n])
        ]


GEMINI = Provider(
    kind="gemini",
    engine=GeminiEngine,
    base_url=BASE_URL,
    describe="Google Gemini API image models (Nano Banana): aspect ratio x 1K/2K/4K, one image per call",
    models=MODELS,
    default=DEFAULT_GRID.capabilities(max_images=3, **_COMMON),
    prices=PRICES,
    prices_read="ai.google.dev/gemini-api/docs/pricing, 2026-12-03",
)
