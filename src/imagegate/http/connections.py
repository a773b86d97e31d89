"""Deadlines for slow or idle connections, which uvicorn does not bound by itself.

A client that opens a connection and sends nothing, or sends its headers a byte at a time, or an
endless chunked body, would hold a connection (and the memory behind it) for ever. Each request
on a connection must have its headers within `header_timeout_s` of the connection opening (or of
its first byte, for the next request on a kept-alive connection), and its body within
`body_timeout_s` of its headers; otherwise the client gets 408 (when no response has started)
and the connection is closed. Idle kept-alive connections close after uvicorn's
`timeout_keep_alive`, and `limit_concurrency` caps connections (503 beyond).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imagegate.config import Settings


def _timeout_response(message: str) -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "request_timeout",
            }
        }
    ).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class DeadlineProtocol(HttpToolsProtocol):
    header_timeout_s: float = 30.0
    body_timeout_s: float = 300.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, "headers")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._late, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self, what: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if cycle is None or not cycle.response_started:
            self.transport.write(
                _timeout_response(
                    f"The request's {what} did not arrive within {seconds:g} s; the connection is closed."
                )
            )
        if cycle is not None:
            cycle.disconnected = True  # the app reading the body sees the client gone
            cycle.message_event.set()
        self.transport.close()


class SettingsHttp(DeadlineProtocol):
    """The protocol of `imagegate serve --workers N`, named to uvicorn by import string: its workers
    are started afresh (spawn), and a class made at run time cannot be sent to them. Each worker's
    app (http/workers.py worker_app) sets its deadlines from the settings before the first connection."""

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.header_timeout_s = settings.header_timeout_s
        cls.body_timeout_s = settings.body_timeout_s


def uvicorn_options(settings: Settings, *, workers: bool = False) -> dict[str, Any]:
    """The connection limits of `imagegate serve` (and of test servers that want them); `workers`:
    for worker processes (`limit_concurrency` then caps each worker's connections)."""
    protocol: Any = "imagegate.http.connections:SettingsHttp"
    if not workers:
        protocol = type(
            "ImagegateHttp",
            (DeadlineProtocol,),
            {"header_timeout_s": settings.header_timeout_s, "body_timeout_s": settings.body_timeout_s},
        )
    return {
        "http": protocol,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "limit_concurrency": settings.max_connections,
    }
