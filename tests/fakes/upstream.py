"""A fake OpenAI images provider: a real HTTP server on loopback that fails on purpose.

It speaks the images wire protocol: POST /v1/images/generations (JSON) and /v1/images/edits
(multipart or JSON) answer real PNGs as `b64_json` (or as `url`s it serves itself under
/v1/files/) with a `usage` block, or an SSE stream of `*.partial_image` and `*.completed` events
when the request asks for one (with `streams=True`); GET /v1/models lists models. Every request
is recorded in `received` (method, path, headers, raw body; `.json()`, `.fields()` and
`.files()` decode JSON and multipart bodies).

Each POST takes the next behaviour from `script` (`push(...)`), else the one `rule(number,
request)` returns (`every(2, ...)` fails every second request), else the one set for its
prompt in `behaviour_by_prompt`, else `default` (("ok",)):
  ("ok",)                           a valid images response (SSE when asked and `streams` is set)
  ("json",)                         a JSON images response even when a stream was asked for
  ("url",)                          the images as URLs served by this fake (until `serve_files` is off)
  ("file", name, data)              one image as the URL of `data`, served by this fake as a "png"
  ("status", code, body, headers)   that status, JSON body and headers (see `error()`)
  ("reset",)                        close the connection abruptly (TCP RST), no answer
  ("charge-reset",)                 do the work and charge for it, then reset (a lost answer)
  ("sleep", seconds)                wait, then answer "ok" (for client and channel timeouts)
  ("slow", seconds, chunks)         the "ok" body in `chunks` pieces, `seconds` apart
  ("truncate",)                     promise the "ok" body's length, send half, close
  ("malformed",)                    200 with a body that is not JSON
  ("sse", partials)                 a stream with `partials` partial images per image, then completed
  ("sse-cut", after)                the stream asked for, reset (TCP RST) after `after` events
  ("sse-error", after)              the stream asked for, with an `error` event after `after` events
  ("sse-stop", after)               the stream asked for, ending cleanly after `after` events
  ("sse-stall", after)              the stream asked for, then only keep-alive comments for 30 s
                                    (these four without `after`: one partial image, then the failure)
Streams pause `event_delay` seconds between events. "ok" honours Idempotency-Key the way
imagegate does: a key seen before gets the stored answer and is not charged again. With
`valid_keys` set, a request whose bearer key is not in it gets 401 (GET /v1/models too);
`models_error` makes GET /v1/models answer that ("status", ...) behaviour (a failing probe).
GET /v1/pricing answers 404 unless `pricing` is set.

Run `python -m tests.fakes.upstream [--port P] [--image-size 1024]` to serve one from a shell
(benchmarks): it prints its /v1 base URL and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

Behaviour = tuple[Any, ...]


def tiny_png(seed: int = 0, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG that does not compress: about 3 bytes per pixel (1024x1024: ~3 MB)."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(
        buffer, "PNG", compress_level=1
    )
    return buffer.getvalue()


def photo_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG about the size of a generated picture's (1024x1024: 1.13 MB, 1.5 MB as base64):
    2 bits of noise per channel compress as poorly as detail does."""
    rng = random.Random(seed)
    table = bytes((i & 3) * 16 + 60 for i in range(256))
    pixels = rng.randbytes(width * height * 3).translate(table)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


USAGE = {
    "input_tokens": 10,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
    "output_tokens": 272,
    "total_tokens": 282,
}
COST_PER_CALL = 10 * 5 + 272 * 40  # µ$ at gpt-image-1 prices: 10 text tokens in, 272 image tokens out


def error(
    status: int,
    message: str = "The server had an error processing your request.",
    code: str | None = None,
    type: str = "server_error",
    param: str | None = None,
    retry_after: float | None = None,
) -> Behaviour:
    """A ("status", ...) behaviour with OpenAI's error body (and Retry-After when given)."""
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return ("status", status, body, headers)


SERVER_ERROR = error(500)
RATE_LIMITED = error(
    429, "Rate limit reached for requests.", "rate_limit_exceeded", "requests", retry_after=20
)
OUT_OF_BALANCE = error(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)


def every(k: int, behaviour: Behaviour) -> Callable[[int, Received], Behaviour | None]:
    """A rule: the k-th, 2k-th, ... POST gets `behaviour` (the others the default)."""
    return lambda number, _request: behaviour if number % k == 0 else None


def always(behaviour: Behaviour) -> Callable[[int, Received], Behaviour | None]:
    return lambda _number, _request: behaviour


@dataclass(frozen=True)
class Part:
    """One part of a multipart body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    number: int = 0  # 1, 2, ... for POSTs, in arrival order; 0 for GETs

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def is_multipart(self) -> bool:
        return self.headers.get("content-type", "").startswith("multipart/form-data")

    def parts(self) -> list[Part]:
        return parse_multipart(self.body, self.headers.get("content-type", ""))

    def fields(self) -> dict[str, list[str]]:
        """The text fields of a multipart body: name -> values, in order."""
        out: dict[str, list[str]] = {}
        for part in self.parts():
            if part.filename is None:
                out.setdefault(part.name, []).append(part.data.decode())
        return out

    def files(self) -> list[Part]:
        return [p for p in self.parts() if p.filename is not None]

    @property
    def params(self) -> dict[str, Any]:
        """The body's parameters: JSON as is, multipart text fields as strings."""
        if self.is_multipart:
            return {k: v[0] if len(v) == 1 else v for k, v in self.fields().items()}
        try:
            value = self.json()
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def prompt(self) -> str:
        """The prompt of a JSON or multipart body."""
        return str(self.params.get("prompt", ""))

    @property
    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError(f"not a multipart content type: {content_type!r}")
    delimiter = b"--" + match.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name_m = re.search(r'\bname="([^"]*)"', disposition)
        file_m = re.search(r'\bfilename="([^"]*)"', disposition)
        parts.append(
            Part(
                name_m.group(1) if name_m else "",
                file_m.group(1) if file_m else None,
                headers.get("content-type"),
                data.removesuffix(b"\r\n"),
            )
        )
    return parts


class FakeUpstream:
    """Start with `with FakeUpstream() as fake:`; `fake.api_base` is the /v1 base URL."""

    def __init__(
        self, *, streams: bool = False, image: bytes | None = None, port: int = 0, record_bodies: bool = True
    ) -> None:
        self.script: collections.deque[Behaviour] = collections.deque()
        self.rule: Callable[[int, Received], Behaviour | None] | None = None
        self.default: Behaviour = ("ok",)
        self.received: list[Received] = []
        self.charges = 0
        self.pricing: dict[str, Any] | None = None
        self.answer_headers: dict[str, str] = {}
        self.delay_by_prompt: dict[str, float] = {}
        self.behaviour_by_prompt: dict[str, Behaviour] = {}
        self.streams = streams  # "ok" answers SSE when the request says stream
        self.image = image  # the PNG of every result; default: a tiny PNG per image index
        self.usage: dict[str, Any] | None = USAGE  # None: responses carry no usage
        self.event_delay = 0.0
        self.valid_keys: set[str] | None = None
        self.models_error: Behaviour | None = None  # a ("status", ...) answer for GET /v1/models
        self.serve_files = True
        self.record_bodies = record_bodies
        self.models = ["gpt-image-1"]
        self._files: dict[str, bytes] = {}
        self._stored: dict[str, bytes] = {}
        self._posts = 0
        self._stopped = False
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
        return self.base_url + "/v1"

    def push(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    def posts(self, path: str | None = None) -> list[Received]:
        with self._lock:
            received = list(self.received)
        return [r for r in received if r.method == "POST" and (path is None or r.path.endswith(path))]

    def reset(self) -> None:
        """Forget what was received and scripted (between tests sharing a fake)."""
        with self._lock:
            self.script.clear()
            self.received.clear()
            self.rule, self.default, self.valid_keys, self.models_error = None, ("ok",), None, None
            self.usage, self.event_delay, self.serve_files = USAGE, 0.0, True

    def result_png(self, index: int) -> bytes:
        return self.image if self.image is not None else tiny_png(index)

    def partial_png(self, index: int, partial: int) -> bytes:
        return tiny_png(100 + 10 * index + partial, (4, 4))

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = True  # connections kept alive stop answering too
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Received) -> Behaviour:
        with self._lock:
            if self.script:
                return self.script.popleft()
        if self.rule is not None:
            found = self.rule(request.number, request)
            if found is not None:
                return found
        return self.behaviour_by_prompt.get(request.prompt, self.default)

    def images_body(self, request: Received, as_url: bool = False) -> bytes:
        params = request.params
        try:
            n = int(params.get("n") or 1)
        except (TypeError, ValueError):
            n = 1
        data = []
        for i in range(n):
            png = self.result_png(i)
            if as_url:
                name = f"img-{request.number}-{i}.png"
                with self._lock:
                    self._files[name] = png
                data.append({"url": f"{self.api_base}/files/{name}"})
            else:
                data.append({"b64_json": base64.b64encode(png).decode()})
        body: dict[str, Any] = {
            "created": int(time.time()),
            "data": data,
            "size": "1024x1024",
            "quality": "low",
            "background": "opaque",
            "output_format": "png",
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return json.dumps(body).encode()

    def idempotent(self, request: Received) -> bytes:
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key and key in self._stored:
                return self._stored[key]
            self.charges += 1
        body = self.images_body(request)
        if key:
            with self._lock:
                self._stored[key] = body
        return body

    def stream_events(self, request: Received, partials: int | None = None) -> list[dict[str, Any]]:
        """The SSE events of a successful stream: per image, its partials then completed."""
        params = request.params
        prefix = "image_edit" if request.path.endswith("/edits") else "image_generation"
        if partials is None:
            partials = int(params.get("partial_images") or 0)
        common = {"size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png"}
        events: list[dict[str, Any]] = []
        for i in range(int(params.get("n") or 1)):
            for p in range(partials):
                events.append(
                    {
                        "type": f"{prefix}.partial_image",
                        "partial_image_index": p,
                        "b64_json": base64.b64encode(self.partial_png(i, p)).decode(),
                        "created_at": int(time.time()),
                        **common,
                    }
                )
            done = {
                "type": f"{prefix}.completed",
                "b64_json": base64.b64encode(self.result_png(i)).decode(),
                "created_at": int(time.time()),
                **common,
            }
            if self.usage is not None:
                done["usage"] = self.usage
            events.append(done)
        return events


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    fake: FakeUpstream


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    @property
    def fake(self) -> FakeUpstream:
        return self.server.fake

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self) -> Received:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not self.fake.record_bodies:  # keep text fields, drop file bytes and big bodies
            headers["x-fake-body-bytes"] = str(len(body))
            if headers.get("content-type", "").startswith("multipart/form-data"):
                body = _without_files(body, headers["content-type"])
            elif len(body) > 65536:
                body = b""
        request = Received(self.command, self.path, headers, body)
        with self.fake._lock:
            if self.command == "POST":
                self.fake._posts += 1
                request.number = self.fake._posts
            self.fake.received.append(request)
        return request

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-request-id", f"req_fake_{len(self.fake.received)}")
        for name, value in {**self.fake.answer_headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _unauthorized(self, request: Received) -> bool:
        keys = self.fake.valid_keys
        if keys is None or request.bearer in keys:
            return False
        # As OpenAI does, the message quotes (part of) the key it got: it must never reach a client.
        error = {
            "message": f"Incorrect API key provided: {request.bearer}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        self._send(401, json.dumps({"error": error}).encode())
        return True

    def handle_one_request(self) -> None:
        if self.fake._stopped:
            self.close_connection = True
            return
        super().handle_one_request()

    def do_GET(self) -> None:
        request = self._record()
        if "/files/" in self.path:
            png = self.fake._files.get(self.path.rsplit("/", 1)[-1])
            if png is not None and self.fake.serve_files:
                self._send(200, png, content_type="image/png")
            else:
                self._send(404, b'{"error": {"message": "expired", "type": "invalid_request_error"}}')
            return
        if self._unauthorized(request):
            return
        if self.path.endswith("/pricing") and self.fake.pricing is not None:
            self._send(200, json.dumps(self.fake.pricing).encode())
        elif self.path.endswith("/models") and self.fake.models_error is not None:
            self._status(request, *self.fake.models_error[1:])
        elif self.path.endswith("/models"):
            models = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.fake.models]
            self._send(200, json.dumps({"object": "list", "data": models}).encode())
        else:
            error = {
                "message": "not here",
                "type": "invalid_request_error",
                "param": None,
                "code": "unknown_url",
            }
            self._send(404, json.dumps({"error": error}).encode())

    def do_POST(self) -> None:
        request = self._record()
        if self._unauthorized(request):
            return
        behaviour = self.fake._next(request)
        try:
            getattr(self, "_" + behaviour[0].replace("-", "_"))(request, *behaviour[1:])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout)

    def _wants_stream(self, request: Received) -> bool:
        stream = request.params.get("stream")
        return self.fake.streams and (stream is True or stream == "true")

    def _ok(self, request: Received) -> None:
        time.sleep(self.fake.delay_by_prompt.get(request.prompt, 0.0))
        if self._wants_stream(request):
            self._sse(request)
        else:
            self._send(200, self.fake.idempotent(request))

    def _json(self, request: Received) -> None:
        self._send(200, self.fake.idempotent(request))

    def _url(self, request: Received) -> None:
        self._send(200, self.fake.images_body(request, as_url=True))

    def _file(self, _request: Received, name: str, data: bytes) -> None:
        with self.fake._lock:
            self.fake._files[name] = data
        body = {"created": int(time.time()), "data": [{"url": f"{self.fake.api_base}/files/{name}"}]}
        self._send(200, json.dumps(body).encode())

    def _status(self, _request: Received, status: int, body: Any, headers: dict[str, str]) -> None:
        self._send(status, json.dumps(body).encode(), headers)

    def _charge_reset(self, request: Received) -> None:
        self.fake.idempotent(request)
        self._reset()

    def _sleep(self, request: Received, seconds: float) -> None:
        time.sleep(seconds)
        self._ok(request)

    def _slow(self, request: Received, seconds: float, chunks: int = 4) -> None:
        body = self.fake.idempotent(request)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        step = -(-len(body) // chunks)
        for start in range(0, len(body), step):
            time.sleep(seconds)
            self.wfile.write(body[start : start + step])

    def _truncate(self, request: Received) -> None:
        body = self.fake.images_body(request)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        self.close_connection = True

    def _malformed(self, _request: Received) -> None:
        self._send(200, b'{"created": 1, "data": [{"b64_json": "iVBORw0KGgo')

    def _write_event(self, event: dict[str, Any]) -> None:
        self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()

    def _sse(
        self, request: Received, partials: int | None = None, cut: int | None = None, how: str = "reset"
    ) -> None:
        events = self.fake.stream_events(request, partials)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        for i, event in enumerate(events):
            if cut is not None and i == cut:
                break
            if i:
                time.sleep(self.fake.event_delay)
            self._write_event(event)
        else:
            return
        if how == "error":
            time.sleep(self.fake.event_delay)
            error = {
                "message": "The image could not be generated.",
                "type": "server_error",
                "code": "server_error",
                "param": None,
            }
            self._write_event({"type": "error", "error": error})
        elif how == "reset":
            self._reset()
        elif how == "stall":  # alive, but no image ever again: keep-alive comments only
            for _ in range(150):
                time.sleep(0.2)
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()

    # Without `after`: one partial image, then the failure. With it: the stream the request
    # asked for, cut after that many events.
    def _sse_cut(self, request: Received, after: int | None = None) -> None:
        self._sse(request, 1 if after is None else None, cut=1 if after is None else after)

    def _sse_error(self, request: Received, after: int | None = None) -> None:
        self._sse(request, 1 if after is None else None, cut=1 if after is None else after, how="error")

    def _sse_stop(self, request: Received, after: int | None = None) -> None:
        self._sse(request, 1 if after is None else None, cut=1 if after is None else after, how="stop")

    def _sse_stall(self, request: Received, after: int | None = None) -> None:
        self._sse(request, 1 if after is None else None, cut=1 if after is None else after, how="stall")


def _without_files(body: bytes, content_type: str) -> bytes:
    """A multipart body with each file's bytes replaced by their length (record_bodies=False)."""
    try:
        parts = parse_multipart(body, content_type)
    except ValueError:
        return b""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    delimiter = b"--" + (boundary.group(1).encode() if boundary else b"x")
    out = b""
    for p in parts:
        head = f'Content-Disposition: form-data; name="{p.name}"'
        if p.filename is not None:
            head += f'; filename="{p.filename}"\r\nContent-Type: {p.content_type}'
            data = f"<{len(p.data)} bytes>".encode()
        else:
            data = p.data
        out += delimiter + b"\r\n" + head.encode() + b"\r\n\r\n" + data + b"\r\n"
    return out + delimiter + b"--\r\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve a fake OpenAI images provider on loopback.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=0, help="answer a WxW PNG (0: an 8x8 one)")
    args = ap.parse_args()
    image = photo_png(args.image_size, args.image_size) if args.image_size else None
    with FakeUpstream(streams=True, image=image, port=args.port, record_bodies=False) as fake:
        print(fake.api_base, flush=True)  # noqa: T201
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
