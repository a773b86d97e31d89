"""Vertex AI Imagen (imagen-4.0-generate-001, -fast-, -ultra-, imagen-3.0-...): one ImageJob as one
`:predict` call.

Read 2026-12-03: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/imagen-api
(request `instances[{prompt}]`, `parameters{sampleCount, aspectRatio, sampleImageSize,
outputOptions{mimeType, compressionQuality}, includeRaiReason, safetySetting, ...}`, answer
`predictions[]{bytesBase64Encoded, mimeType}` or `{raiFilteredReason}`),
https://cloud.google.com/vertex-ai/generative-ai/docs/image/set-output-resolution (`sampleImageSize`
"1K"/"2K" on imagen-4.0-generate-001 and -ultra- only), the model cards under
https://cloud.google.com/vertex-ai/generative-ai/docs/models/imagen/ (sizes, 4 images per
request), https://cloud.google.com/vertex-ai/generative-ai/docs/start/express-mode/vertex-ai-express-mode-api-reference
(express mode), https://cloud.google.com/vertex-ai/generative-ai/pricing (per-image prices).
Google lists these Imagen endpoints as deprecated (migrate to Gemini image models by 2026-06-30):
the adapter serves the projects that still have them.

Two ways to reach it, by the channel's options:
- `project` (and `location`, default us-central1) set: the channel's key is an OAuth 2 access
  token, sent as a bearer token, to `{base}/projects/{p}/locations/{l}/publishers/google/models/
  {model}:predict`. With the default base URL (the global host) and a regional location, the
  regional host `https://{location}-aiplatform.googleapis.com/v1` is used, as Google's own SDK
  does; a base URL the operator set is used as given. An access token expires within the hour:
  the operator rotates it (`channels update --api-key`); a rejected one disables the channel.
- neither: Vertex AI express mode, an API key in `x-goog-api-key`, on the global host without
  project or location: `{base}/publishers/google/models/{model}:predict`.

Filtered images come back as `raiFilteredReason` (asked for with includeRaiReason). The missing ones
are asked again (up to REFILLS calls: an engine delivers the n images asked for, or fails); when
every image is filtered, or they stay missing, or Imagen refuses the prompt with a 400 naming
Google's Responsible AI practices, the client gets 400 `moderation_blocked`. There is no usage in the answer:
Imagen is priced per image. Errors are Google's (engines/gemini.py GoogleEngine).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from imagegate.domain import FinalImage, ImageJob
from imagegate.engines.catalog import Provider, longest_prefix
from imagegate.engines.gemini import GoogleEngine, SizeGrid
from imagegate.engines.openai_wire import decoded
from imagegate.pricing import ModelPrice

BASE_URL = "https://aiplatform.googleapis.com/v1"
DEFAULT_LOCATION = "us-central1"
KEY_CHECK_MODEL = "imagen-4.0-generate-001"  # a model to GET when the channel maps none
REFILLS = 2  # calls for the images a content filter took out of an answer, before refusing

IMAGEN_1K = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
}
WITH_2K = SizeGrid.scaled(IMAGEN_1K, {"1K": 1, "2K": 2})  # these models take sampleImageSize
ONLY_1K = SizeGrid.scaled(IMAGEN_1K, {None: 1})
GRIDS = {
    "imagen-4.0-generate": WITH_2K,
    "imagen-4.0-ultra-generate": WITH_2K,
    "imagen-4.0-fast-generate": ONLY_1K,
    "imagen-3.0": ONLY_1K,
}
_COMMON: dict[str, Any] = dict(
    formats=("png", "jpeg"), alpha=False, max_n=4, edits=False, masks=False, max_images=0,
    streaming=False, qualities=(),
)  # fmt: skip
MODELS = {name: grid.capabilities(**_COMMON) for name, grid in GRIDS.items()}


def _each(usd: str) -> ModelPrice:
    micros = round(float(usd) * 1_000_000)
    return ModelPrice(text_in_per_1m=0, image_in_per_1m=0, image_out_per_1m=0, per_image={"*": {"*": micros}})


# cloud.google.com/vertex-ai/generative-ai/pricing (Imagen), read 2026-12-03: per image, any size.
PRICES = {
    "imagen-4.0-generate": _each("0.04"),
    "imagen-4.0-ultra-generate": _each("0.06"),
    "imagen-4.0-fast-generate": _each("0.02"),
    "imagen-3.0-generate": _each("0.04"),
    "imagen-3.0-fast-generate": _each("0.02"),
}


def predict_body(job: ImageJob, model: str) -> dict[str, Any]:
    """The :predict body for `job` (its n, size and format already adapted to the model)."""
    ratio, tier = (longest_prefix(GRIDS, model) or ONLY_1K).native(job.width, job.height)
    jpeg = job.output_format == "jpeg"
    output: dict[str, Any] = {"mimeType": "image/jpeg" if jpeg else "image/png"}
    if jpeg:
        output["compressionQuality"] = job.output_compression
    parameters: dict[str, Any] = {
        "sampleCount": job.n,
        "aspectRatio": ratio,
        "outputOptions": output,
        "includeRaiReason": True,  # a filtered image says so, rather than silently missing
    }
    if tier:
        parameters["sampleImageSize"] = tier
    if job.moderation == "low":  # OpenAI's "less restrictive filtering"
        parameters["safetySetting"] = "block_only_high"
    return {"instances": [{"prompt": job.prompt}], "parameters": parameters}


def predictions(body: Any) -> tuple[list[tuple[bytes, str | None, str]], list[str]]:
    """The answer's images as (bytes, base64 text or None, mime type), and the reasons the others
    were filtered. Raises ValueError, KeyError, TypeError or AttributeError on a malformed body."""
    images, filtered = [], []
    for item in body.get("predictions") or ():
        if item.get("bytesBase64Encoded"):
            images.append((*decoded(item["bytesBase64Encoded"]), str(item.get("mimeType") or "image/png")))
        else:
            filtered.append(str(item.get("raiFilteredReason") or "filtered"))
    return images, filtered


class VertexEngine(GoogleEngine):
    """One Vertex AI Imagen channel (see the module docstring)."""

    kind = "Vertex AI Imagen"

    @property
    def _project(self) -> str | None:
        return self.channel.options.get("project") or None

    def _host(self) -> str:
        """The base URL: the regional host for a project's location when the base is the default."""
        base = self.channel.base_url.rstrip("/")
        location = self.channel.options.get("location") or DEFAULT_LOCATION
        if self._project and base == BASE_URL and location != "global":
            return f"https://{location}-aiplatform.googleapis.com/v1"
        return base

    def _url(self, job: ImageJob) -> str:
        model = quote(self.channel.upstream_model(job.model), safe="")
        scope = ""
        if self._project:
            location = self.channel.options.get("location") or DEFAULT_LOCATION
            scope = f"/projects/{quote(self._project, safe='')}/locations/{quote(location, safe='')}"
        return f"{self._host()}{scope}/publishers/google/models/{model}:predict"

    def _headers(self) -> dict[str, str]:
        if self._project:
            return {"Authorization": f"Bearer {self.channel.api_key}"}
        return super()._headers()

    def key_check(self) -> tuple[str, dict[str, str]]:
        """GET the publisher model, as Google's SDK does for models.get: v1beta1, no project."""
        host = self._host()
        root = host[: -len("/v1")] + "/v1beta1" if host.endswith("/v1") else host
        model = next(iter(self.channel.model_map.values()), KEY_CHECK_MODEL)
        return f"{root}/publishers/google/models/{quote(model, safe='')}", self._headers()

    async def _send(self, job: ImageJob) -> aiohttp.ClientResponse:
        return await self._post(job, predict_body(job, self.channel.upstream_model(job.model)))

    async def _complete(self, response: aiohttp.ClientResponse, job: ImageJob) -> list[FinalImage]:
        images, filtered = self._read(await response.read())
        # Some images filtered: the missing ones are asked again (a filtered image is not billed),
        # since the client gets the n images it asked for or none. Every image filtered: the
        # prompt is refused.
        for _ in range(REFILLS if images else 0):
            if len(images) >= job.n:
                break
            more, also = await self._more(job, job.n - len(images))
            images, filtered = images + more, filtered + also
        if len(images) < job.n:
            raise self._blocked(", ".join(dict.fromkeys(filtered)) or "every image was filtered")
        return [
            FinalImage(index=i, encoded=data, b64=b64, media_type=mime)
            for i, (data, b64, mime) in enumerate(images[: job.n])
        ]

    def _read(self, raw: bytes) -> tuple[list[tuple[bytes, str | None, str]], list[str]]:
        try:
            return predictions(orjson.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._error("answered with a malformed body", retryable=True) from exc

    async def _more(self, job: ImageJob, count: int) -> tuple[list[tuple[bytes, str | None, str]], list[str]]:
        fewer = replace(job, n=count)
        response = await self._post(fewer, predict_body(fewer, self.channel.upstream_model(job.model)))
        try:
            if response.status != 200:
                await self._raise_for(response)
            return self._read(await response.read())
        finally:
            response.release()


VERTEX = Provider(
    kind="vertex",
    engine=VertexEngine,
    base_url=BASE_URL,
    describe="Google Vertex AI Imagen: 5 aspect ratios x 1K/2K, up to 4 images per call "
    "(options project and location with an OAuth token, or express mode with an API key)",
    models=MODELS,
    default=ONLY_1K.capabilities(**_COMMON),
    prices=PRICES,
    prices_read="cloud.google.com/vertex-ai/generative-ai/pricing, 2026-12-03",
    options=("project", "location"),
)
