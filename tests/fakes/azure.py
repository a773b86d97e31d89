"""A fake Azure OpenAI resource: a real HTTP server on loopback, strict the way Azure is.

Written from Microsoft's image generation guide (engines/azure.py cites it): it serves
`POST /openai/deployments/{deployment}/images/generations|edits?api-version=...` and the v1 API's
`POST /openai/v1/images/generations|edits` (the deployment as `model`), `GET /openai/models` and
`/openai/v1/models`. It refuses what Azure refuses, in Azure's shapes: a missing or wrong `api-key`
(401, whatever bearer token comes with it), an unknown api-version (404), an unknown deployment
(404 DeploymentNotFound), a parameter gpt-image models do not take (400, `response_format`
included), a size they do not render, WebP, and an edit that is not multipart. It answers images
of the size and format asked (base64 only) with OpenAI's `usage`, and streams as OpenAI does
(FakeUpstream's SSE). Everything else (the script of behaviours, `received`) is FakeUpstream's,
plus `content_filtered(code)` (Azure's 400) and `("sse-filtered",)` (a stream the filter stops).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from tests.fakes import upstream
from tests.fakes.upstream import Behaviour, FakeUpstream, Received
from tests.imaging import encode

API_VERSIONS = {"2025-04-01-preview", "2025-03-01-preview", "2024-10-21", "preview"}
SIZES = {"1024x1024", "1536x1024", "1024x1536", "auto"}
FIELDS = {
    "model", "prompt", "n", "size", "quality", "background", "output_format", "output_compression",
    "stream", "partial_images", "user", "moderation", "input_fidelity",
}  # fmt: skip
DENIED = {
    "code": "401",
    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API endpoint for "
    "your resource.",
}


def invalid(message: str, param: str | None = None, code: str | None = "invalid_value") -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def content_filtered(code: str = "contentFilter", generated: bool = False) -> Behaviour:
    """Azure's refusal of a prompt (or of the image it made) by its content filter."""
    what = "Generated image was filtered" if generated else "Your task failed"
    error: dict[str, Any] = {"code": code, "message": f"{what} as a result of our safety system."}
    if code == "content_filter":
        error["innererror"] = {"code": "ResponsibleAIPolicyViolation"}
    return ("status", 400, {"created": int(time.time()), "error": error}, {})


class FakeAzure(FakeUpstream):
    """`with FakeAzure(key) as fake:`; `fake.api_base` is the resource's endpoint (no path)."""

    def __init__(self, key: str, deployments: dict[str, str] | None = None) -> None:
        super().__init__(streams=True)
        self.key = key
        self.deployments = deployments or {"img-deploy": "gpt-image-1"}  # deployment -> model
        self._server.RequestHandlerClass = _Handler

    @property
    def api_base(self) -> str:
        return self.base_url

    def refusal(self, request: Received) -> tuple[int, dict[str, Any]] | None:
        """What Azure answers instead of images (None: it serves the request)."""
        if request.headers.get("api-key") != self.key:
            return 401, {"error": DENIED}
        path, query = urlsplit(request.path).path, parse_qs(urlsplit(request.path).query)
        v1 = path.startswith("/openai/v1/")
        if not v1 and query.get("api-version", [""])[0] not in API_VERSIONS:
            return 404, {"error": {"code": "404", "message": "Resource not found"}}
        if request.method == "GET":
            return None if path in ("/openai/models", "/openai/v1/models") else (404, invalid("Not found"))
        deployment = request.params.get("model") if v1 else path.split("/")[3]
        if not path.endswith(("/images/generations", "/images/edits")) or deployment not in self.deployments:
            message = "The API deployment for this resource does not exist."
            return 404, {"error": {"code": "DeploymentNotFound", "message": message}}
        return self._invalid_body(request, edit=path.endswith("/edits"))

    def _invalid_body(self, request: Received, edit: bool) -> tuple[int, dict[str, Any]] | None:
        if edit and not request.is_multipart:
            return 400, invalid("The edits API takes multipart/form-data.", None, "invalid_request")
        params = request.params
        for name in params:
            if name not in FIELDS:
                return 400, invalid(f"Unrecognized request argument supplied: {name}", name, None)
        if params.get("size", "auto") not in SIZES:
            return 400, invalid(f"Invalid size '{params['size']}'. Supported: {sorted(SIZES)}.", "size")
        if params.get("output_format", "png") not in ("png", "jpeg"):
            return 400, invalid("output_format must be png or jpeg.", "output_format")
        if edit and not request.files():
            return 400, invalid("An image is required.", "image", "missing_required_parameter")
        return None

    def images_body(self, request: Received, as_url: bool = False) -> bytes:  # noqa: ARG002
        params = request.params
        size = params.get("size", "auto")
        width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
        fmt = params.get("output_format", "png")
        picture = encode(Image.new("RGB", (width, height), (30, 90, 160)), fmt.upper())
        data = [{"b64_json": base64.b64encode(picture).decode()} for _ in range(int(params.get("n", 1)))]
        body = {"created": int(time.time()), "data": data, "output_format": fmt, "size": f"{width}x{height}"}
        if self.usage is not None:
            body["usage"] = self.usage
        return json.dumps(body).encode()


class RefusingHandler(upstream._Handler):
    """FakeUpstream's handler, with the fake's `refusal(request)` (status and body, or None) answered
    before any behaviour: the handler of the Azure, Seedream and xAI fakes."""

    def _unauthorized(self, request: Received) -> bool:
        refused = self.server.fake.refusal(request)  # type: ignore[attr-defined]
        if refused is not None:
            self._send(refused[0], json.dumps(refused[1]).encode())
        return refused is not None


class _Handler(RefusingHandler):
    def _sse_filtered(self, request: Received) -> None:
        """A stream that sends one partial image, then the content filter's error event."""
        self._sse(request, 1, cut=1, how="stop")
        self._write_event({"type": "error", "error": content_filtered("content_filter", True)[2]["error"]})

    def do_GET(self) -> None:
        request = self._record()
        if not self._unauthorized(request):
            fake: FakeAzure = self.server.fake  # type: ignore[assignment]
            models = [{"id": m, "object": "model"} for m in sorted(set(fake.deployments.values()))]
            self._send(200, json.dumps({"object": "list", "data": models}).encode())
