"""A fake Gemini API (generativelanguage.googleapis.com/v1beta) on loopback, strict like the real one.

Written from https://ai.google.dev/api/generate-content, https://ai.google.dev/gemini-api/docs/image-generation
and https://ai.google.dev/gemini-api/docs/troubleshooting (read 2026-12-03), independently of the
adapter's tables: `POST /v1beta/models/{model}:generateContent` with the key in `x-goog-api-key`
(none: 403 PERMISSION_DENIED; an unknown one: 400 API_KEY_INVALID; a bearer token: 401
UNAUTHENTICATED). An unknown field anywhere, a part that is not exactly one of text and inline
data, bad base64, a response modality other than TEXT/IMAGE or none with IMAGE, more than one
candidate, an aspect ratio the model does not render, `imageSize` on a model without tiers or a
tier it lacks: 400 INVALID_ARGUMENT in Google's words. An unknown model: 404 NOT_FOUND.

It answers a PNG of the model's native size for the ratio and tier asked (1:1 and 1K when not
asked), Gemini 3 models with a `thought` draft part first, and `usageMetadata` by modality. GET
/v1beta/models lists the models (same key rules). Every request is in `received`.

Each valid POST takes the next behaviour from `script` (`push`), else `rule(number, request)`,
else the one for its prompt in `by_prompt`, else `default` (("ok",)):
  ("ok",)                      an image
  ("status", code, body)       that status and JSON body (see google_error and the constants)
  ("blocked", reason)          200 with promptFeedback.blockReason and no candidate
  ("finish", reason)           200 with a candidate that ended with that finishReason, no image
  ("text",)                    200 with a text-only candidate (finishReason STOP)
  ("malformed",)               200 with a body that is not JSON
  ("sleep", seconds)           wait, then an image

GoogleFake (the server, the script and the recording) is shared with tests/fakes/vertex.py.
"""

from __future__ import annotations

import base64
import binascii
import collections
import io
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from tests.fakes.upstream import Behaviour, Received

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Behaviour:
    """A ("status", ...) behaviour with Google's error body."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return ("status", code, {"error": error})


KEY_INVALID = google_error(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    [{"@type": ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com",
      "metadata": {"service": "generativelanguage.googleapis.com"}}],
)  # fmt: skip
NO_KEY = google_error(
    403,
    "PERMISSION_DENIED",
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API.",
)
NOT_OAUTH = google_error(
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential.",
)
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information "
    "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)


def quota(limit: int, retry_s: int = 3) -> Behaviour:
    """429 RESOURCE_EXHAUSTED as Gemini sends it: a per-minute quota (`limit` > 0) or a model the
    project has no paid access to (`limit` 0)."""
    violation = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
        "quotaValue": str(limit),
    }
    return google_error(
        429,
        "RESOURCE_EXHAUSTED",
        _QUOTA_MESSAGE,
        [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_s}s"},
        ],
    )


RATE_LIMITED = quota(10)
NO_PAID_QUOTA = quota(0)
BILLING_DISABLED = google_error(
    403,
    "PERMISSION_DENIED",
    "This API method requires billing to be enabled.",
    [{"@type": ERROR_INFO, "reason": "BILLING_DISABLED", "domain": "googleapis.com"}],
)
UNAVAILABLE = google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


class Refusal(Exception):
    """A request the real service refuses: answered with Google's error body."""

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(behaviour)
        self.status, self.body = behaviour[1], behaviour[2]


def invalid(message: str) -> Refusal:
    return Refusal(google_error(400, "INVALID_ARGUMENT", message))


def unknown_fields(value: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """`value` if it is an object with only `allowed` fields (Google's words otherwise)."""
    if not isinstance(value, dict):
        raise invalid(f"Invalid value at '{where}', expected an object.")
    for name in value:
        if name not in allowed:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
            )
    return value


def png(size: tuple[int, int], seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 53 % 256, 120, 200)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class GoogleFake:
    """The server, the script and the recording of a fake Google API; subclasses answer."""

    api_version = "v1beta"

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.script: collections.deque[Behaviour] = collections.deque()
        self.rule: Callable[[int, Received], Behaviour | None] | None = None
        self.by_prompt: dict[str, Behaviour] = {}
        self.default: Behaviour = ("ok",)
        self.valid_keys: set[str] = set()
        self._posts = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/{self.api_version}"

    def push(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    def posts(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.method == "POST"]

    def gets(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.method == "GET"]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.script.clear()
        self.rule, self.default, self.by_prompt = None, ("ok",), {}

    def __enter__(self) -> GoogleFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Received:
        request = Received(method, path, headers, body)
        with self._lock:
            if method == "POST":
                self._posts += 1
                request.number = self._posts
            self.received.append(request)
        return request

    def behaviour(self, request: Received, prompt: str) -> Behaviour:
        with self._lock:
            if self.script:
                return self.script.popleft()
        found = self.rule(request.number, request) if self.rule is not None else None
        return found or self.by_prompt.get(prompt, self.default)

    def answer(self, request: Received) -> tuple[int, bytes]:
        """(status, JSON body) for one request: the subclass's GET or POST, refusals as errors."""
        try:
            if request.method == "GET":
                return 200, json.dumps(self.get(request)).encode()
            return self.post(request)
        except Refusal as refusal:
            return refusal.status, json.dumps(refusal.body).encode()

    def get(self, request: Received) -> Any:
        raise NotImplementedError

    def post(self, request: Received) -> tuple[int, bytes]:
        raise NotImplementedError

    def outcome(
        self, request: Received, prompt: str, ok: Callable[[], Any], special: Callable[..., Any]
    ) -> tuple[int, bytes]:
        """The scripted behaviour for a valid request: `ok()` for an image, `special(kind, *args)`
        for the subclass's own kinds (a JSON body for a 200, or (status, bytes))."""
        kind, *args = self.behaviour(request, prompt)
        if kind == "status":
            return args[0], json.dumps(args[1]).encode()
        if kind == "malformed":
            return 200, b'{"candidates": [{"content": {"parts": [{"inlineData": '
        if kind == "sleep":
            time.sleep(args[0])
            kind = "ok"
        answer = ok() if kind == "ok" else special(kind, *args)
        return answer if isinstance(answer, tuple) else (200, json.dumps(answer).encode())


# --- the Gemini API ----------------------------------------------------------------------------

# Google's tables, transcribed row by row: ratio, then the size at each tier.
_TABLES = {
    "gemini-2.5-flash-image": ((None,), """
        1:1 1024x1024 | 2:3 832x1248 | 3:2 1248x832 | 3:4 864x1184 | 4:3 1184x864
        4:5 896x1152 | 5:4 1152x896 | 9:16 768x1344 | 16:9 1344x768 | 21:9 1536x672"""),
    "gemini-3-pro-image-preview": (("1K", "2K", "4K"), """
        1:1 1024x1024 2048x2048 4096x4096 | 2:3 848x1264 1696x2528 3392x5056
        3:2 1264x848 2528x1696 5056x3392 | 3:4 896x1200 1792x2400 3584x4800
        4:3 1200x896 2400x1792 4800x3584 | 4:5 928x1152 1856x2304 3712x4608
        5:4 1152x928 2304x1856 4608x3712 | 9:16 768x1376 1536x2752 3072x5504
        16:9 1376x768 2752x1536 5504x3072 | 21:9 1584x672 3168x1344 6336x2688"""),
    "gemini-3.1-flash-image-preview": (("512", "1K", "2K", "4K"), """
        1:1 512x512 1024x1024 2048x2048 4096x4096 | 1:4 256x1024 512x2048 1024x4096 2048x8192
        1:8 192x1536 384x3072 768x6144 1536x12288 | 2:3 424x632 848x1264 1696x2528 3392x5056
        3:2 632x424 1264x848 2528x1696 5056x3392 | 3:4 448x600 896x1200 1792x2400 3584x4800
        4:1 1024x256 2048x512 4096x1024 8192x2048 | 4:3 600x448 1200x896 2400x1792 4800x3584
        4:5 464x576 928x1152 1856x2304 3712x4608 | 5:4 576x464 1152x928 2304x1856 4608x3712
        8:1 1536x192 3072x384 6144x768 12288x1536 | 9:16 384x688 768x1376 1536x2752 3072x5504
        16:9 688x384 1376x768 2752x1536 5504x3072 | 21:9 792x336 1584x672 3168x1344 6336x2688"""),
}  # fmt: skip
# Output image tokens per tier, and how many reference images each model takes.
TOKENS = {
    "gemini-2.5-flash-image": {None: 1290},
    "gemini-3-pro-image-preview": {"1K": 1120, "2K": 1120, "4K": 2000},
    "gemini-3.1-flash-image-preview": {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
}
MAX_REFERENCES = {
    "gemini-2.5-flash-image": 3,
    "gemini-3-pro-image-preview": 14,
    "gemini-3.1-flash-image-preview": 14,
}
INPUT_IMAGE_TOKENS = 258


def _parse_table(tiers: tuple[str | None, ...], text: str) -> dict[str, dict[str | None, tuple[int, int]]]:
    table = {}
    for row in re.split(r"[|\n]", text):
        if row.strip():
            ratio, *sizes = row.split()
            table[ratio] = {tier: tuple(map(int, s.split("x"))) for tier, s in zip(tiers, sizes, strict=True)}
    return table  # type: ignore[return-value]


SIZES = {model: _parse_table(*spec) for model, spec in _TABLES.items()}
GENERATION_FIELDS = {"responseModalities", "imageConfig", "temperature", "topP", "topK", "candidateCount",
                     "seed", "maxOutputTokens", "stopSequences", "thinkingConfig"}  # fmt: skip
THRESHOLDS = {"BLOCK_NONE", "BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_LOW_AND_ABOVE", "OFF"}
MIME_TYPES = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
_PATH = re.compile(r"^/v1beta/models/([^/:]+):generateContent$")


class FakeGemini(GoogleFake):
    """Start with `with FakeGemini() as fake:`; `fake.api_base` is the /v1beta base URL."""

    def __init__(self, port: int = 0, valid_keys: set[str] | None = None) -> None:
        super().__init__(port)
        self.valid_keys = set(valid_keys or ())

    def authorize(self, request: Received) -> None:
        key = request.headers.get("x-goog-api-key")
        if key is None:
            raise Refusal(NOT_OAUTH if "authorization" in request.headers else NO_KEY)
        if key not in self.valid_keys:
            raise Refusal(KEY_INVALID)

    def get(self, request: Received) -> Any:
        self.authorize(request)
        if request.path.split("?")[0] != "/v1beta/models":
            raise Refusal(google_error(404, "NOT_FOUND", "Requested entity was not found."))
        return {
            "models": [
                {"name": f"models/{m}", "supportedGenerationMethods": ["generateContent"]} for m in SIZES
            ]
        }

    def post(self, request: Received) -> tuple[int, bytes]:
        self.authorize(request)
        found = _PATH.match(request.path)
        if found is None or found.group(1) not in SIZES:
            name = found.group(1) if found else request.path
            message = (
                f"models/{name} is not found for API version v1beta, or is not supported for generateContent."
            )
            raise Refusal(google_error(404, "NOT_FOUND", message))
        model = found.group(1)
        try:
            body = json.loads(request.body)
        except ValueError:
            raise invalid("Invalid JSON payload received.") from None
        prompt, references, ratio, tier = self.check(model, body)
        size = SIZES[model][ratio][tier]
        return self.outcome(
            request,
            prompt,
            lambda: self.image_answer(model, request.number, size, tier, prompt, references),
            self.refusal_answer,
        )

    def check(self, model: str, body: Any) -> tuple[str, int, str, str | None]:
        """(prompt, reference images, ratio, tier) of a valid body; Refusal otherwise."""
        unknown_fields(body, {"contents", "generationConfig", "safetySettings", "systemInstruction"}, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise invalid("* GenerateContentRequest.contents: contents is not specified")
        texts, references = [], 0
        for content in contents:
            unknown_fields(content, {"role", "parts"}, "contents[0]")
            if content.get("role", "user") not in ("user", "model") or not content.get("parts"):
                raise invalid("* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.")
            for part in content["parts"]:
                text, image = _part(part)
                texts += [text] if text is not None else []
                references += image
        if references > MAX_REFERENCES[model]:
            raise invalid(f"Too many input images: at most {MAX_REFERENCES[model]} for this model.")
        ratio, tier = self.generation(model, body.get("generationConfig") or {})
        for setting in body.get("safetySettings") or ():
            unknown_fields(setting, {"category", "threshold"}, "safety_settings[0]")
            if setting.get("threshold") not in THRESHOLDS or not str(setting.get("category")).startswith(
                "HARM_"
            ):
                raise invalid(f"Invalid value at 'safety_settings[0]': {setting}")
        return " ".join(texts), references, ratio, tier

    def generation(self, model: str, config: Any) -> tuple[str, str | None]:
        unknown_fields(config, GENERATION_FIELDS, "generation_config")
        modalities = [str(m).upper() for m in config.get("responseModalities") or ["TEXT", "IMAGE"]]
        if not set(modalities) <= {"TEXT", "IMAGE"} or "IMAGE" not in modalities:
            raise invalid(
                f"The requested combination of response modalities ({', '.join(modalities)}) "
                "is not supported by the model."
            )
        if int(config.get("candidateCount", 1)) != 1:
            raise invalid(f"Multiple candidates is not enabled for models/{model}")
        image = unknown_fields(config.get("imageConfig") or {}, {"aspectRatio", "imageSize"}, "image_config")
        ratio = image.get("aspectRatio", "1:1")
        if ratio not in SIZES[model]:
            raise invalid(f"Unsupported aspect ratio: {ratio}. The model supports {', '.join(SIZES[model])}.")
        tiers = list(TOKENS[model])
        if "imageSize" in image and tiers == [None]:
            raise invalid("imageSize is not supported by this model.")
        tier = image.get("imageSize", "1K") if tiers != [None] else None
        if tier not in tiers:
            raise invalid(f"Unsupported image size: {tier}. Supported: {', '.join(map(str, tiers))}.")
        return ratio, tier

    def image_answer(
        self, model: str, number: int, size: tuple[int, int], tier: str | None, prompt: str, references: int
    ) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if model.startswith("gemini-3"):  # Gemini 3 thinks in drafts, returned as thought parts
            parts.append(
                {"inlineData": {"mimeType": "image/png", "data": b64(png((16, 16), 99))}, "thought": True}
            )
        parts.append({"inlineData": {"mimeType": "image/png", "data": b64(png(size, number))}})
        text_tokens = len(prompt.split())
        prompt_details = [{"modality": "TEXT", "tokenCount": text_tokens}]
        if references:
            prompt_details.append({"modality": "IMAGE", "tokenCount": INPUT_IMAGE_TOKENS * references})
        out = TOKENS[model][tier]
        return {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": text_tokens + INPUT_IMAGE_TOKENS * references,
                "candidatesTokenCount": out,
                "totalTokenCount": text_tokens + INPUT_IMAGE_TOKENS * references + out,
                "promptTokensDetails": prompt_details,
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": out}],
            },
            "modelVersion": model,
            "responseId": f"fake-{number}",
        }

    def refusal_answer(self, kind: str, reason: str = "") -> dict[str, Any]:
        usage = {"promptTokenCount": 9, "totalTokenCount": 9}
        if kind == "blocked":
            return {"promptFeedback": {"blockReason": reason}, "usageMetadata": usage}
        parts = [{"text": "I can't make that image."}] if kind == "text" else []
        finish = reason if kind == "finish" else "STOP"
        return {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
            "usageMetadata": usage,
        }


def _part(part: Any) -> tuple[str | None, int]:
    """(its text, 1 if it is an image) of a valid part."""
    unknown_fields(
        part, {"text", "inline_data", "inlineData", "thought", "thoughtSignature"}, "contents[0].parts[0]"
    )
    kinds = [k for k in ("text", "inline_data", "inlineData") if k in part]
    if len(kinds) != 1:
        raise invalid(
            "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have "
            "one initialized field"
        )
    if kinds[0] == "text":
        return str(part["text"]), 0
    data = unknown_fields(
        part[kinds[0]], {"mime_type", "mimeType", "data"}, "contents[0].parts[0].inline_data"
    )
    mime = data.get("mime_type", data.get("mimeType"))
    if mime not in MIME_TYPES:
        raise invalid(f"Unsupported MIME type: {mime}")
    try:
        base64.b64decode(data.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed."
        ) from None
    return None, 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: GoogleFake


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = self.server.fake.record(self.command, self.path, headers, body)
        status, payload = self.server.fake.answer(request)
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = _serve
