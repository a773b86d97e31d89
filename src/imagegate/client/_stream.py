"""A streamed generation or edit, sans-IO: feed it the response's lines, get StreamEvents.

`open_stream` is the plan that sends the request (with retries, until the first byte) and
returns a `StreamSession`; the client then reads lines with its own I/O and hands each to
`feed`. `finish` records the call in the monitor; `broken` turns a dropped connection into
an APIConnectionError (also recorded).
"""

from __future__ import annotations

import json
from typing import Any

from imagegate.client._core import Core, new_idempotency_key
from imagegate.client._errors import APIConnectionError, APIError
from imagegate.client._plan import Plan, send
from imagegate.client._requests import Call, to_request
from imagegate.client._sse import ServerEvent, SSEDecoder
from imagegate.client._types import StreamEvent, Usage, image_from_item
from imagegate.client.pricing import PriceTable


class StreamSession:
    """The state of one open stream: decoder, images seen, cost so far."""

    def __init__(
        self,
        core: Core,
        call: Call,
        table: PriceTable,
        started: float,
        response: Any,
        request_id: str | None,
        content_type: str = "text/event-stream",
    ) -> None:
        self.core = core
        self.call = call
        self.table = table
        self.started = started
        self.response = response  # the driver's open HTTP response
        self.request_id = request_id
        self.completed = 0
        self.cost_micro_usd = 0
        self._decoder = SSEDecoder()
        self._done = False
        # A server that ignores `stream` answers with plain JSON: collect it, emit it at the end.
        self._json_lines: list[str] | None = [] if content_type.startswith("application/json") else None

    def feed(self, line: str) -> list[StreamEvent]:
        """Consume one line of the body; return the events it completed."""
        if self._json_lines is not None:
            self._json_lines.append(line)
            return []
        return [e for event in self._decoder.feed(line) if (e := self._event(event)) is not None]

    def finish(self) -> list[StreamEvent]:
        """End of body: flush the last event and record the call."""
        if self._json_lines is not None:
            events = self._from_json("\n".join(self._json_lines))
        else:
            events = [e for event in self._decoder.flush() if (e := self._event(event)) is not None]
        self._record(None)
        return events

    def broken(self, exc: Exception) -> APIConnectionError:
        """The error to raise when the connection drops mid-stream (recorded as a failure)."""
        error = APIConnectionError(f"The stream was cut off: {exc}", request_id=self.request_id)
        self._record(error)
        return error

    def _record(self, error: APIError | None) -> None:
        if self._done:
            return
        self._done = True
        if error is None and self.completed == 0:
            error = APIError("The stream ended without a completed image.", request_id=self.request_id)
        self.core.record(
            self.call,
            self.started,
            kind=f"{self.call.kind}-stream",
            error=error,
            cost=self.cost_micro_usd,
            images=self.completed,
        )

    def _event(self, event: ServerEvent) -> StreamEvent | None:
        if event.data.strip() == "[DONE]":
            return None
        try:
            payload = json.loads(event.data)
        except ValueError:
            return None
        kind = str(payload.get("type") or event.event or "")
        if kind == "error" or "error" in payload:
            inner = payload.get("error") if isinstance(payload.get("error"), dict) else payload
            error = APIError(
                str(inner.get("message") or "The stream reported an error."), request_id=self.request_id
            )
            self._record(error)
            raise error
        partial = kind.endswith(".partial_image")
        index = payload.get("partial_image_index") if partial else self.completed
        image = image_from_item(payload, int(index or 0), payload)
        if image is None:
            return None
        if partial:
            return StreamEvent(kind, image, True, partial_image_index=int(index or 0))
        usage = Usage.from_json(payload.get("usage"))
        cost, _ = self.core.cost_of(self.table, self.call, usage, payload, 1)
        self.completed += 1
        self.cost_micro_usd += cost
        return StreamEvent(kind, image, False, usage=usage, cost_micro_usd=cost)

    def _from_json(self, text: str) -> list[StreamEvent]:
        try:
            body = json.loads(text)
        except ValueError:
            return []
        result = self.core.result(self.call, body, self.table, {"x-request-id": self.request_id or ""})
        self.completed = len(result.images)
        self.cost_micro_usd = result.cost_micro_usd
        kind = "image_edit.completed" if self.call.kind == "edit" else "image_generation.completed"
        share = result.cost_micro_usd // max(1, len(result.images))
        return [
            StreamEvent(kind, image, False, usage=result.usage, cost_micro_usd=share)
            for image in result.images
        ]


def open_stream(core: Core, call: Call, partial_images: int | None) -> Plan[StreamSession]:
    """Send a streaming request (retried until an answer starts) and return its session."""
    started = core.env.clock()
    table = yield from core.price_table()
    if partial_images is not None:
        call = Call(
            call.kind,
            call.prompt,
            call.model,
            {**call.params, "partial_images": partial_images},
            call.images,
            call.mask,
            call.idempotency_key,
        )
    request = to_request(call, core.headers(call.idempotency_key or new_idempotency_key()), stream=True)
    try:
        reply = yield from send(request, core.policy, core.env)
    except APIError as exc:
        core.record(call, started, kind=f"{call.kind}-stream", error=exc)
        raise
    return StreamSession(
        core,
        call,
        table,
        started,
        reply.stream,
        reply.headers.get("x-request-id"),
        reply.headers.get("content-type", "text/event-stream"),
    )
