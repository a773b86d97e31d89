"""A fake Volcengine Ark serving Seedream: a real HTTP server on loopback, strict the way Ark is.

Written from the Ark image generation reference (engines/seedream.py cites it): `POST
/api/v3/images/generations` and `GET /api/v3/models`, `Authorization: Bearer`. It refuses, in Ark's
shapes (`{"error": {"code", "message", "param", "type"}}`): a wrong key (401 AuthenticationError),
an unknown model or field (400 InvalidParameter; Seedream 3.0 takes no `image` nor
`sequential_image_generation`), a size outside the model's limits (4.0: 1280x720 to 4096x4096
pixels, ratio 1/16 to 16; 4.5 and 5.0 from 2560x1440; 3.0 edges 512 to 2048), more than 14
reference images, or a reference that is not a URL or data URL. It answers one JPEG of the asked
size per call (`sequential_image_generation` disabled), as `b64_json` or a URL it serves, with
Ark's `usage {generated_images, output_tokens, total_tokens}`.

Behaviours beyond FakeUpstream's: `sensitive(code)` (Ark's 400 for filtered content),
`("failed-image", code)` (200 with the image's `error` in `data`), `OVERDUE` (403
AccountOverdueError).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from PIL import Image

from tests.fakes.azure import RefusingHandler
from tests.fakes.upstream import Behaviour, FakeUpstream, Received
from tests.imaging import encode

# Model family -> (min pixels, max pixels, max ratio, the fields it takes beyond the common ones).
FAMILIES: dict[str, tuple[int, int, float, set[str]]] = {
    "seedream-3-0": (512 * 512, 2048 * 2048, 4.0, {"seed", "guidance_scale"}),
    "seedream-4-0": (1280 * 720, 4096 * 4096, 16.0, {"image", "sequential_image_generation", "stream"}),
    "seedream-4-5": (2560 * 1440, 4096 * 4096, 16.0, {"image", "sequential_image_generation", "stream"}),
}
COMMON = {"model", "prompt", "size", "response_format", "watermark"}
TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}


def ark_error(status: int, code: str, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
    kind = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden"}.get(status, "BadRequest")
    error = {"code": code, "message": f"{message} Request id: 0217fake", "param": param, "type": kind}
    return status, {"error": {k: v for k, v in error.items() if v is not None}}


def sensitive(code: str = "InputTextSensitiveContentDetected") -> Behaviour:
    message = "The request failed because the input text may contain sensitive information."
    return ("status", *ark_error(400, code, message), {})


OVERDUE: Behaviour = (
    "status",
    *ark_error(403, "AccountOverdueError", "The request failed because your account has an overdue balance."),
    {},
)


def _family(model: str) -> tuple[int, int, float, set[str]] | None:
    return next((v for k, v in FAMILIES.items() if model.removeprefix("doubao-").startswith(k)), None)


def _size(value: Any) -> tuple[int, int] | None:
    if value in TIERS:
        return TIERS[value], TIERS[value]
    width, _, height = str(value).partition("x")
    return (int(width), int(height)) if width.isdigit() and height.isdigit() else None


class FakeArk(FakeUpstream):
    """`with FakeArk(key) as fake:`; `fake.api_base` is the /api/v3 base URL."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._server.RequestHandlerClass = _Handler

    @property
    def api_base(self) -> str:
        return self.base_url + "/api/v3"

    def refusal(self, request: Received) -> tuple[int, dict[str, Any]] | None:
        if request.bearer != self.key:
            return ark_error(
                401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid."
            )
        if request.method == "GET":
            return None
        params = request.params
        family = _family(str(params.get("model", "")))
        if request.path != "/api/v3/images/generations" or family is None:
            return ark_error(404, "InvalidEndpointOrModel.NotFound", "The model or endpoint does not exist.")
        least, most, max_ratio, extra = family
        for name in params:
            if name not in COMMON | extra:
                return ark_error(400, "InvalidParameter", f"The parameter `{name}` is not valid.", name)
        size = _size(params.get("size", "2K"))
        if size is None or not least <= size[0] * size[1] <= most or max(size) > max_ratio * min(size):
            return ark_error(400, "InvalidParameter", "The parameter `size` is out of range.", "size")
        images = params.get("image", [])
        images = [images] if isinstance(images, str) else images
        if len(images) > 14 or not all(str(i).startswith(("http", "data:image/")) for i in images):
            return ark_error(400, "InvalidParameter", "The parameter `image` is not valid.", "image")
        if params.get("sequential_image_generation", "disabled") not in ("disabled", "auto"):
            message = "The parameter `sequential_image_generation` is not valid."
            return ark_error(400, "InvalidParameter", message, "sequential_image_generation")
        return None

    def images_body(self, request: Received, as_url: bool = False) -> bytes:
        params = request.params
        width, height = _size(params.get("size", "2K")) or (2048, 2048)
        picture = encode(Image.new("RGB", (width, height), (200, 120, 40)), "JPEG")
        item: dict[str, Any] = {"size": f"{width}x{height}"}
        if as_url or params.get("response_format", "url") == "url":
            name = f"seedream-{request.number}.jpeg"
            with self._lock:
                self._files[name] = picture
            item["url"] = f"{self.api_base}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(picture).decode()
        tokens = width * height // 256
        usage = {"generated_images": 1, "output_tokens": tokens, "total_tokens": tokens}
        body = {"model": params["model"], "created": int(time.time()), "data": [item], "usage": usage}
        return json.dumps(body).encode()


class _Handler(RefusingHandler):
    def _failed_image(self, request: Received, code: str) -> None:
        message = "The request failed because the output image may contain sensitive information."
        error = ark_error(400, code, message)[1]["error"]
        body = {"model": request.params["model"], "created": int(time.time()), "data": [{"error": error}]}
        self._send(200, json.dumps(body).encode())
