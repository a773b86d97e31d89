"""A real HTTP server on loopback that fails on purpose, for the SDK's retry and batch tests.

Each POST takes the next behaviour from a script, else the one set for its prompt in
`behaviour_by_prompt`, else "ok":
  ("ok",)                      a valid images response (a tiny PNG per image, with usage)
  ("status", code, body, headers)   that status, JSON body and headers
  ("reset",)                   close the connection abruptly (TCP RST), no answer
  ("charge-reset",)            do the work and charge for it, then reset (a lost answer)
  ("sleep", seconds)           wait, then answer "ok" (for client timeouts)
  ("sse", partials)            a text/event-stream with `partials` partial images, then completed
  ("sse-cut",)                 one partial image event, then a reset mid-stream
"ok" honours Idempotency-Key the way imagegate does: a key seen before gets the stored answer
and is not charged again. GET /v1/pricing answers 404 unless `pricing` is set. Every request
is recorded (method, path, headers, body) in `received`.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


def tiny_png(seed: int = 0, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


USAGE = {"input_tokens": 10, "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
         "output_tokens": 272, "total_tokens": 282}
COST_PER_CALL = 10 * 5 + 272 * 40  # µ$ at gpt-image-1 prices: 10 text tokens in, 272 image tokens out


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def prompt(self) -> str:
        """The prompt of a JSON or multipart body."""
        if self.body.startswith(b"{"):
            return str(self.json().get("prompt", ""))
        marker = b'name="prompt"\r\n\r\n'
        start = self.body.find(marker)
        if start < 0:
            return ""
        start += len(marker)
        return self.body[start:self.body.find(b"\r\n", start)].decode()


class FakeUpstream:
    """Start with `with FakeUpstream() as fake:`; `fake.api_base` is the /v1 base URL."""

    def __init__(self) -> None:
        self.script: collections.deque[tuple[Any, ...]] = collections.deque()
        self.received: list[Received] = []
        self.charges = 0
        self.pricing: dict[str, Any] | None = None
        self.answer_headers: dict[str, str] = {}
        self.delay_by_prompt: dict[str, float] = {}
        self.behaviour_by_prompt: dict[str, tuple[Any, ...]] = {}
        self._stored: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *behaviours: tuple[Any, ...]) -> None:
        self.script.extend(behaviours)

    def posts(self, path: str | None = None) -> list[Received]:
        return [r for r in self.received if r.method == "POST" and (path is None or r.path.endswith(path))]

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Received) -> tuple[Any, ...]:
        with self._lock:
            if self.script:
                return self.script.popleft()
        return self.behaviour_by_prompt.get(request.prompt, ("ok",))

    def images_body(self, request: Received) -> bytes:
        try:
            params = request.json()
        except ValueError:
            params = {}
        n = int(params.get("n") or 1) if isinstance(params, dict) else 1
        data = [{"b64_json": base64.b64encode(tiny_png(i)).decode()} for i in range(n)]
        return json.dumps({"created": int(time.time()), "data": data, "size": "1024x1024", "quality": "low",
                           "background": "opaque", "output_format": "png", "usage": USAGE}).encode()

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



class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeUpstream


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    @property
    def fake(self) -> FakeUpstream:
        return self.server.fake

    def _record(self) -> Received:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.fake._lock:
            self.fake.received.append(request)
        return request

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
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

    def do_GET(self) -> None:
        self._record()
        if self.path.endswith("/pricing") and self.fake.pricing is not None:
            self._send(200, json.dumps(self.fake.pricing).encode())
        elif self.path.endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "gpt-image-1"}]}).encode())
        else:
            error = {"message": "not here", "type": "invalid_request_error", "param": None,
                     "code": "unknown_url"}
            self._send(404, json.dumps({"error": error}).encode())

    def do_POST(self) -> None:
        request = self._record()
        behaviour = self.fake._next(request)
        getattr(self, "_" + behaviour[0].replace("-", "_"))(request, *behaviour[1:])

    def _ok(self, request: Received) -> None:
        time.sleep(self.fake.delay_by_prompt.get(request.prompt, 0.0))
        self._send(200, self.fake.idempotent(request))

    def _status(self, _request: Received, status: int, body: Any, headers: dict[str, str]) -> None:
        self._send(status, json.dumps(body).encode(), headers)

    def _charge_reset(self, request: Received) -> None:
        self.fake.idempotent(request)
        self._reset()

    def _sleep(self, request: Received, seconds: float) -> None:
        time.sleep(seconds)
        try:
            self._send(200, self.fake.idempotent(request))
        except OSError:
            pass  # the client gave up

    def _sse(self, _request: Received, partials: int = 0, cut: bool = False) -> None:
        events = [{"type": "image_generation.partial_image", "partial_image_index": i,
                   "b64_json": base64.b64encode(tiny_png(i)).decode(), "size": "1024x1024",
                   "quality": "low", "background": "opaque", "output_format": "png"}
                  for i in range(partials)]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()
        if cut:
            self._reset()
            return
        done = {"type": "image_generation.completed", "b64_json": base64.b64encode(tiny_png(9)).decode(),
                "size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png",
                "usage": USAGE}
        self.wfile.write(f"event: {done['type']}\ndata: {json.dumps(done)}\n\n".encode())
        self.close_connection = True

    def _sse_cut(self, request: Received) -> None:
        self._sse(request, 1, cut=True)
