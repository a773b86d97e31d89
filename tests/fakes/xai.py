"""A fake xAI images API: a real HTTP server on loopback, strict the way xAI is.

Written from xAI's image guide and REST reference (engines/xai.py cites them): `POST
/v1/images/generations`, `POST /v1/images/edits` (JSON only: the reference as `image: {"url",
"type"}`, or up to 3 as `images`), `GET /v1/models`, `Authorization: Bearer`. It refuses, in xAI's
shape (`{"code": "<status phrase>", "error": "<message>"}`): a wrong key (a 400 "Incorrect API key
provided", as xAI answers it), `size`, `quality` (but on grok-imagine-image-2.0, low or medium),
`style` or any unknown field ("Argument not supported: size"), an aspect ratio or resolution
outside its lists, `aspect_ratio`/`resolution` or an edit on grok-2-image, `n` outside 1-10, and a
multipart edit. It answers JPEGs of the native size of the ratio and resolution asked (grok-2-image:
1024x768), with `mime_type`, `revised_prompt` and `respect_moderation`.

Behaviours beyond FakeUpstream's: `("moderated",)` (200, the image withheld with
`respect_moderation: false`), `NO_CREDITS` (403: the team has no credits).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from PIL import Image

from tests.fakes.azure import RefusingHandler
from tests.fakes.upstream import Behaviour, FakeUpstream, Received
from tests.imaging import encode

# xAI's aspect ratio enum (with the newer 21:9 and 5:2, and auto) and each ratio's 1k size (2k
# doubles it), from Runware's tables of grok-imagine-image; 21:9's and 5:2's sizes are assumed
# (no table gives them, and the adapter never asks for them).
ONE_K = {
    "1:1": (1024, 1024), "3:4": (896, 1280), "4:3": (1280, 896), "9:16": (768, 1408),
    "16:9": (1408, 768), "2:3": (864, 1296), "3:2": (1296, 864), "9:19.5": (576, 1248),
    "19.5:9": (1248, 576), "9:20": (576, 1280), "20:9": (1280, 576), "1:2": (704, 1408),
    "2:1": (1408, 704), "21:9": (1568, 672), "5:2": (1600, 640), "auto": (1024, 1024),
}  # fmt: skip
FIELDS = {"model", "prompt", "n", "response_format", "user", "aspect_ratio", "resolution"}
MODELS = ("grok-imagine-image", "grok-imagine-image-pro", "grok-imagine-image-2.0", "grok-2-image")
INVALID = "Client specified an invalid argument"


def xai_error(status: int, message: str, code: str = INVALID) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "error": message}


NO_CREDITS: Behaviour = (
    "status",
    *xai_error(
        403,
        "Your team has either used all available credits or reached its monthly spending limit.",
        "The caller does not have permission to execute the specified operation",
    ),
    {},
)


class FakeXai(FakeUpstream):
    """`with FakeXai(key) as fake:`; `fake.api_base` is the /v1 base URL."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._server.RequestHandlerClass = _Handler

    def refusal(self, request: Received) -> tuple[int, dict[str, Any]] | None:
        if request.bearer != self.key:
            shown = f"{(request.bearer or '')[:2]}***{(request.bearer or '')[-2:]}"
            return xai_error(
                400,
                f"Incorrect API key provided: {shown}. You can obtain an API key from https://console.x.ai.",
            )
        if request.method == "GET":
            return None
        if request.is_multipart:
            return xai_error(
                415, "Expected request with `Content-Type: application/json`", "Unsupported Media Type"
            )
        params = request.params
        model = str(params.get("model", ""))
        edit = request.path == "/v1/images/edits"
        if model not in MODELS or request.path not in ("/v1/images/generations", "/v1/images/edits"):
            return xai_error(
                404, f"The model {model} does not exist or your team does not have access to it.", "Not Found"
            )
        allowed = FIELDS | ({"quality"} if model.startswith("grok-imagine-image-2") else set())
        if model == "grok-2-image":
            allowed = allowed - {"aspect_ratio", "resolution"}
        if edit:
            allowed = allowed | {"image", "images"}
        for name in params:
            if name not in allowed:
                return xai_error(400, f"Argument not supported: {name}")
        return self._invalid_values(params, model, edit)

    def _invalid_values(
        self, params: dict[str, Any], model: str, edit: bool
    ) -> tuple[int, dict[str, Any]] | None:
        if params.get("aspect_ratio", "1:1") not in ONE_K or params.get("resolution", "1k") not in (
            "1k",
            "2k",
        ):
            return xai_error(400, "Invalid aspect_ratio or resolution.")
        if params.get("quality", "medium") not in ("low", "medium"):
            return xai_error(400, "Invalid quality: expected low or medium.")
        if not 1 <= int(params.get("n", 1)) <= 10:
            return xai_error(400, "n must be between 1 and 10.")
        references = params.get("images") or ([params["image"]] if "image" in params else [])
        if edit and (model == "grok-2-image" or not 1 <= len(references) <= 3):
            return xai_error(400, "An edit takes 1 to 3 images, on a Grok Imagine model.")
        if not all(
            isinstance(r, dict) and str(r.get("url", "")).startswith(("http", "data:image/"))
            for r in references
        ):
            return xai_error(400, 'Each image must be {"url": <URL or data URL>}.')
        return None

    def images_body(self, request: Received, as_url: bool = False) -> bytes:
        params = request.params
        if params["model"] == "grok-2-image":
            width, height = 1024, 768
        else:
            width, height = ONE_K[params.get("aspect_ratio", "1:1")]
            scale = 2 if params.get("resolution") == "2k" else 1
            width, height = width * scale, height * scale
        picture = encode(Image.new("RGB", (width, height), (10, 10, 10)), "JPEG")
        item = {
            "mime_type": "image/jpeg",
            "revised_prompt": f"A picture of {params['prompt']}",
            "respect_moderation": True,
        }
        data = []
        for i in range(int(params.get("n", 1))):
            if as_url or params.get("response_format", "url") == "url":
                name = f"xai-{request.number}-{i}.jpeg"
                with self._lock:
                    self._files[name] = picture
                data.append({**item, "url": f"{self.api_base}/files/{name}"})
            else:
                data.append({**item, "b64_json": base64.b64encode(picture).decode()})
        return json.dumps({"data": data}).encode()


class _Handler(RefusingHandler):
    def _moderated(self, request: Received) -> None:
        item = {"url": "", "mime_type": "image/jpeg", "respect_moderation": False}
        self._send(200, json.dumps({"data": [item] * int(request.params.get("n", 1))}).encode())
