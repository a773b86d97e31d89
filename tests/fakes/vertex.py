"""A fake Vertex AI Imagen (`:predict`) on loopback, strict like the real one.

Written from https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/imagen-api, the
Imagen model cards and the express mode reference (read 2026-12-03), independently of the adapter:
- `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict` with
  `Authorization: Bearer <OAuth token>` (none or an unknown one: 401 UNAUTHENTICATED; another
  project or location: 403 PERMISSION_DENIED);
- express mode, `POST /v1/publishers/google/models/{model}:predict` with `x-goog-api-key` (none:
  401 UNAUTHENTICATED; an unknown one: 400 API_KEY_INVALID);
- `GET /v1beta1/publishers/google/models/{model}` (models.get, either credential).
The body is `instances` (one, with `prompt` only) and `parameters`; an unknown field, sampleCount
outside 1-4, an aspect ratio other than Imagen's five, `sampleImageSize` on a model without it or
other than 1K/2K, an output mime type other than PNG and JPEG, compressionQuality for PNG or
outside 0-100: 400 INVALID_ARGUMENT. It answers `predictions[]{bytesBase64Encoded, mimeType}` of
the native size, in the format asked. Behaviours are GoogleFake's (tests/fakes/gemini.py), plus:
  ("filter", k, reason)   the last k images filtered (`raiFilteredReason` when includeRaiReason,
                          else left out, as Vertex does)
  ("rai-prompt",)         the 400 Imagen answers for a prompt against Google's Responsible AI practices
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from PIL import Image

from tests.fakes.gemini import (
    ERROR_INFO,
    GoogleFake,
    Refusal,
    b64,
    google_error,
    invalid,
    png,
    unknown_fields,
)
from tests.fakes.upstream import Received

# Imagen's sizes (model cards): 1K, and 2K for the models that take sampleImageSize.
SIZES_1K = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
}
SIZES_2K = {
    "1:1": (2048, 2048),
    "3:4": (1792, 2560),
    "4:3": (2560, 1792),
    "9:16": (1536, 2816),
    "16:9": (2816, 1536),
}
TIERS = {
    "imagen-4.0-generate-001": {"1K": SIZES_1K, "2K": SIZES_2K},
    "imagen-4.0-ultra-generate-001": {"1K": SIZES_1K, "2K": SIZES_2K},
    "imagen-4.0-fast-generate-001": {None: SIZES_1K},
    "imagen-3.0-generate-002": {None: SIZES_1K},
}
PARAMETERS = {"sampleCount", "aspectRatio", "sampleImageSize", "outputOptions", "personGeneration",
              "addWatermark", "safetySetting", "includeRaiReason", "includeSafetyAttributes", "enhancePrompt",
              "negativePrompt", "seed", "language", "storageUri"}  # fmt: skip
SAFETY = {"block_low_and_above", "block_medium_and_above", "block_only_high", "block_none"}
PEOPLE = {"dont_allow", "allow_adult", "allow_all"}
UNAUTHENTICATED = google_error(
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential.",
)
KEY_INVALID = google_error(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    [{"@type": ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com",
      "metadata": {"service": "aiplatform.googleapis.com"}}],
)  # fmt: skip
RAI_PROMPT = google_error(
    400,
    "INVALID_ARGUMENT",
    "Image generation failed with the following error: The prompt could not be submitted. This prompt "
    "contains sensitive words that violate Google's Responsible AI practices. Try rephrasing the prompt. "
    "If you think this was an error, send feedback. Support codes: 42876398",
)
QUOTA = google_error(
    429,
    "RESOURCE_EXHAUSTED",
    "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base "
    "model: imagen-4.0-generate. Please submit a quota increase request.",
)
_PREDICT = re.compile(
    r"^/v1(?:/projects/([^/]+)/locations/([^/]+))?/publishers/google/models/([^/:]+):predict$"
)
_GET = re.compile(r"^/v1beta1/publishers/google/models/([^/:]+)$")


class FakeVertex(GoogleFake):
    """Start with `with FakeVertex() as fake:`; `fake.api_base` is the /v1 base URL."""

    api_version = "v1"

    def __init__(
        self,
        port: int = 0,
        tokens: set[str] | None = None,
        keys: set[str] | None = None,
        project: str = "imagegate-test",
        location: str = "us-central1",
    ) -> None:
        super().__init__(port)
        self.tokens = set(tokens or ())  # valid OAuth access tokens
        self.valid_keys = set(keys or ())  # valid express mode API keys
        self.project, self.location = project, location

    def authorize(self, request: Received, project: str | None, location: str | None) -> None:
        if project is None:  # express mode: an API key on the global host
            key = request.headers.get("x-goog-api-key")
            if key is None:
                raise Refusal(UNAUTHENTICATED)
            if key not in self.valid_keys:
                raise Refusal(KEY_INVALID)
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            raise Refusal(UNAUTHENTICATED)
        if (project, location) != (self.project, self.location):
            raise Refusal(
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    f"Permission 'aiplatform.endpoints.predict' "
                    f"denied on resource '//aiplatform.googleapis.com/projects/{project}/"
                    f"locations/{location}' (or it may not exist).",
                )
            )

    def get(self, request: Received) -> Any:
        found = _GET.match(request.path)
        if "authorization" in request.headers:
            self.authorize(request, self.project, self.location)
        else:
            self.authorize(request, None, None)
        if found is None or found.group(1) not in TIERS:
            raise Refusal(google_error(404, "NOT_FOUND", "Publisher Model is not found."))
        return {"name": f"publishers/google/models/{found.group(1)}", "versionState": "VERSION_STATE_STABLE"}

    def post(self, request: Received) -> tuple[int, bytes]:
        found = _PREDICT.match(request.path)
        if found is None:
            raise Refusal(google_error(404, "NOT_FOUND", "The requested URL was not found on this server."))
        project, location, model = found.groups()
        self.authorize(request, project, location)
        if model not in TIERS:
            name = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
            raise Refusal(google_error(404, "NOT_FOUND", f"Publisher Model `{name}` not found."))
        try:
            body = json.loads(request.body)
        except ValueError:
            raise invalid("Invalid JSON payload received.") from None
        prompt, params = self.check(model, body)
        return self.outcome(
            request,
            prompt,
            lambda: self.images(model, request.number, params),
            lambda kind, *args: self.special(kind, model, request.number, params, *args),
        )

    def check(self, model: str, body: Any) -> tuple[str, dict[str, Any]]:
        unknown_fields(body, {"instances", "parameters"}, "")
        instances = body.get("instances")
        if not isinstance(instances, list) or len(instances) != 1:
            raise invalid("Exactly one instance is expected.")
        instance = unknown_fields(instances[0], {"prompt"}, "instances[0]")
        if not isinstance(instance.get("prompt"), str) or not instance["prompt"].strip():
            raise invalid("Image generation failed with the following error: prompt is required.")
        params = unknown_fields(body.get("parameters") or {}, PARAMETERS, "parameters")
        count = params.get("sampleCount", 4)
        if not isinstance(count, int) or not 1 <= count <= 4:
            raise invalid(
                f"Image generation failed with the following error: sampleCount must be 1-4, got {count}."
            )
        if params.get("aspectRatio", "1:1") not in SIZES_1K:
            raise invalid(f"Image generation failed: unsupported aspect ratio {params['aspectRatio']}.")
        tiers = TIERS[model]
        if "sampleImageSize" in params and params["sampleImageSize"] not in tiers:
            raise invalid(f"sampleImageSize {params['sampleImageSize']} is not supported by {model}.")
        if params.get("safetySetting", "block_medium_and_above") not in SAFETY:
            raise invalid(f"Unsupported safetySetting {params['safetySetting']}.")
        if params.get("personGeneration", "allow_adult") not in PEOPLE:
            raise invalid(f"Unsupported personGeneration {params['personGeneration']}.")
        output = unknown_fields(
            params.get("outputOptions") or {}, {"mimeType", "compressionQuality"}, "outputOptions"
        )
        mime = output.get("mimeType", "image/png")
        if mime not in ("image/png", "image/jpeg"):
            raise invalid(f"Unsupported output mime type {mime}.")
        quality = output.get("compressionQuality")
        if quality is not None and (
            mime != "image/jpeg" or not isinstance(quality, int) or not 0 <= quality <= 100
        ):
            raise invalid("compressionQuality is an integer 0-100 for image/jpeg only.")
        return instance["prompt"], params

    def images(
        self, model: str, number: int, params: dict[str, Any], filtered: int = 0, reason: str = ""
    ) -> dict[str, Any]:
        tiers = TIERS[model]
        size = tiers[params.get("sampleImageSize", "1K") if None not in tiers else None][
            params.get("aspectRatio", "1:1")
        ]
        mime = (params.get("outputOptions") or {}).get("mimeType", "image/png")
        count = params.get("sampleCount", 4)
        out: list[dict[str, Any]] = []
        for i in range(count):
            if i >= count - filtered:
                if params.get("includeRaiReason"):
                    out.append({"raiFilteredReason": reason})
                continue
            data = png(size, number * 10 + i) if mime == "image/png" else _jpeg(size, number * 10 + i)
            out.append({"bytesBase64Encoded": b64(data), "mimeType": mime})
        return {"predictions": out} if out else {}

    def special(self, kind: str, model: str, number: int, params: dict[str, Any], *args: Any) -> Any:
        if kind == "rai-prompt":
            return RAI_PROMPT[1], json.dumps(RAI_PROMPT[2]).encode()
        if kind == "filter":
            return self.images(model, number, params, *args)
        raise ValueError(f"unknown behaviour {kind!r}")


def _jpeg(size: tuple[int, int], seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 53 % 256, 120, 200)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()
