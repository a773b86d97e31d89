"""The upstream engine: one OpenAI-compatible channel, spoken to over HTTP.

It sends the client's own parameters (with the channel's model name) to the provider,
JSON for generations and for JSON edits, multipart (`image[]`, `mask`, decimal strings)
for file edits; it relays SSE streams event by event. It yields encoded images with the
provider's `usage` (FinalImage.extra["usage"]) and raises UpstreamError for failures,
marked retryable (connection errors, timeouts, 408, 429, 5xx, malformed bodies) or not
(a 4xx is the client's fault and is relayed unchanged), and whether the channel should be
disabled (401/403, or an error saying the account is out of balance).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx
import pybase64

from imagegate.domain import EngineEvent, FinalImage, ImageJob, PartialImage
from imagegate.errors import UpstreamError
from imagegate.images.encode import MEDIA_TYPES
from imagegate.images.tokens import Usage
from imagegate.storage.channels import Channel

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# Words in an upstream error that mean the provider account cannot pay (new-api's rule).
OUT_OF_BALANCE = ("insufficient_quota", "billing", "balance", "credit", "quota exceeded")
# Failures before the request reached the provider: it cannot have charged for them.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Why a channel is disabled (channels.py probes the two kinds differently).
KEY_REJECTED_REASON = "the provider answered {status} (key rejected)"
OUT_OF_BALANCE_REASON = "the provider account is out of balance"


class UpstreamEngine:
    """Serves the models of one channel."""

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self.name = f"upstream:{channel.name}"

    def describe(self) -> str:
        return f"OpenAI-compatible upstream channel '{self.channel.name}'"

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        path = "/images/edits" if job.kind == "edit" else "/images/generations"
        request = self._build(path, job)
        # The channel's timeout bounds the whole exchange up to the result (a stream: up to its
        # headers; then each event must come within it). httpx's own timeout bounds each read, which
        # a provider trickling its body a byte at a time would never trip.
        deadline = anyio.current_time() + self.channel.timeout_s
        try:
            with _until(deadline):
                response = await self.http.send(request, stream=True)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise self._error(f"timed out ({type(exc).__name__})", retryable=True,
                              maybe_billed=not isinstance(exc, _NOT_SENT)) from exc
        except httpx.TransportError as exc:
            raise self._error(f"could not be reached ({type(exc).__name__})", retryable=True,
                              maybe_billed=not isinstance(exc, _NOT_SENT)) from exc
        try:
            if response.status_code != 200:
                with _until(deadline):
                    await self._raise_for(response)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                async for event in self._stream(response, job):
                    yield event
            else:
                with _until(deadline):
                    events = await self._complete(response, job)
                for event in events:
                    yield event
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise self._error(f"timed out while sending the result (over {self.channel.timeout_s:g} s)",
                              retryable=True) from exc
        except httpx.TransportError as exc:
            raise self._error(f"broke off the response ({type(exc).__name__})", retryable=True) from exc
        finally:
            await response.aclose()

    def _build(self, path: str, job: ImageJob) -> httpx.Request:
        url = self.channel.base_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.channel.api_key}"}
        timeout = httpx.Timeout(self.channel.timeout_s, connect=min(10.0, self.channel.timeout_s))
        body = {**job.passthrough, "model": self.channel.upstream_model(job.model)}
        if job.kind == "edit" and not job.relay_json:
            # The files as the client named them, streamed from their temporary files in 64 KiB
            # chunks (never read whole); the media type is the one sniffed from the bytes.
            parts = [("image[]", f"image-{i}", img) for i, img in enumerate(job.images)]
            if job.mask is not None:
                parts.append(("mask", "mask", job.mask))
            files = [
                (name, (img.filename or f"{stem}.{_ext(img.media_type)}", img.source.relayable(),
                        img.media_type))
                for name, stem, img in parts
            ]
            data = {k: _form_value(v) for k, v in body.items()}
            return self.http.build_request("POST", url, headers=headers, data=data, files=files,
                                           timeout=timeout)
        return self.http.build_request("POST", url, headers=headers, json=body, timeout=timeout)

    async def _complete(self, response: httpx.Response, job: ImageJob) -> list[FinalImage]:
        raw = await response.aread()
        try:
            body = json.loads(raw)
            items = body["data"][:job.n]
            images = [_image_bytes(item) for item in items]
            if not images:
                raise KeyError("data")
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error("answered with a malformed body", retryable=True) from exc
        fetched = [img if isinstance(img, tuple) else (await self._fetch(img), None) for img in images]
        usage = _usage(body.get("usage"))
        echo = {k: body[k] for k in ("size", "quality", "background", "output_format") if k in body}
        fmt = body.get("output_format") or job.output_format
        # The usage is the request's: on the first image. Without one, the gateway's own token math bills.
        return [
            FinalImage(index=i, encoded=data, b64=b64, media_type=MEDIA_TYPES.get(fmt, "image/png"),
                       extra={"echo": echo} if usage is None else
                       {"usage": usage if i == 0 else Usage(), "echo": echo})
            for i, (data, b64) in enumerate(fetched)
        ]

    async def _fetch(self, url: str) -> bytes:
        """An upstream that answers with URLs: fetch them now (they expire; ours are kept)."""
        try:
            resp = await self.http.get(url, timeout=self.channel.timeout_s)
        except httpx.HTTPError as exc:
            raise self._error("returned an image URL that could not be fetched", retryable=True) from exc
        if resp.status_code != 200:
            raise self._error(f"returned an image URL that answered {resp.status_code}", retryable=True)
        return resp.content

    async def _stream(self, response: httpx.Response, job: ImageJob) -> AsyncIterator[EngineEvent]:
        index = 0
        async for event in _sse_events(response):
            kind = str(event.get("type", ""))
            if "error" in event and not kind.endswith(("partial_image", "completed")):
                raise self._error("failed mid-stream", retryable=False, body={"error": event["error"]},
                                  maybe_billed=False)
            if not kind.endswith((".partial_image", ".completed")):
                continue  # an event type this relay does not know (keep-alives, future ones)
            try:
                data, b64 = _decoded(event["b64_json"])
            except (KeyError, TypeError, binascii.Error) as exc:
                raise self._error("sent a malformed stream event", retryable=False) from exc
            if kind.endswith(".partial_image"):
                yield PartialImage(index=index, partial_index=int(event.get("partial_image_index", 0)),
                                   encoded=data, b64=b64)
            else:
                fmt = event.get("output_format") or job.output_format
                usage = _usage(event.get("usage"))
                yield FinalImage(index=index, encoded=data, b64=b64,
                                 media_type=MEDIA_TYPES.get(fmt, "image/png"),
                                 extra={} if usage is None else {"usage": usage})
                index += 1
                if index == job.n:
                    return
        if index < job.n:  # the stream ended (cleanly) before every image was delivered
            raise self._error("ended the stream before the image was complete", retryable=True)

    async def _raise_for(self, response: httpx.Response) -> None:
        raw = await response.aread()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        status = response.status_code
        message = json.dumps(body).lower() if body is not None else raw[:500].decode("utf-8", "replace")
        if status == 400:
            # A 400 is the client's fault unless its code or type says the account cannot pay; its
            # message may quote the client's own words ("... balance ..."), which must not disable a channel.
            error = body.get("error") if isinstance(body, dict) else None
            message = " ".join(str(error.get(k) or "") for k in ("code", "type")).lower() \
                if isinstance(error, dict) else ""
        disable = None
        if status in (401, 403):
            disable = KEY_REJECTED_REASON.format(status=status)
        elif status == 402 or (any(word in message for word in OUT_OF_BALANCE) and status in (400, 429)):
            disable = OUT_OF_BALANCE_REASON  # 402 Payment Required: whatever it says
        retryable = status in RETRYABLE_STATUS or disable is not None
        retry_after = _retry_after(response.headers)
        raise UpstreamError(
            f"The upstream provider answered HTTP {status}.",
            status=status, retryable=retryable, channel=self.channel.name,
            upstream_body=body if isinstance(body, dict) and "error" in body else None,
            disable_reason=disable, retry_after_s=retry_after,
        )

    def _error(self, what: str, *, retryable: bool, body: dict[str, Any] | None = None,
               maybe_billed: bool = True) -> UpstreamError:
        """A failure after the request went out (unless `maybe_billed` says otherwise)."""
        return UpstreamError(f"The upstream provider {what}.", status=502, retryable=retryable,
                             channel=self.channel.name, upstream_body=body, maybe_billed=maybe_billed)


async def _sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse `data:` lines of an SSE stream into JSON objects as they arrive."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            payload = "\n".join(data)
            data = []
            if payload.strip() == "[DONE]":
                return
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


def _image_bytes(item: Mapping[str, Any]) -> tuple[bytes, str | None] | str:
    """A b64_json item's bytes (and its text, see _decoded); a url item's URL."""
    if item.get("b64_json"):
        return _decoded(item["b64_json"])
    if item.get("url"):
        return str(item["url"])
    raise KeyError("b64_json")


def _decoded(text: Any) -> tuple[bytes, str | None]:
    """The bytes of base64 `text` as base64.b64decode(text, validate=True) gives them, errors
    included, and `text` itself when it is exactly what base64.b64encode would make of them (so
    the response can reuse it: encoding 1.1 MB again and copying it into a str cost 0.3 ms).

    pybase64 (SIMD) decodes a 1024x1024 PNG in 0.05 ms instead of 1.7 ms; it refuses a few inputs
    the standard library takes (excess padding), so those, and whatever is not ASCII text, get
    the standard library's verdict."""
    data = None
    if isinstance(text, str) and text.isascii():
        with contextlib.suppress(binascii.Error):
            data = pybase64.b64decode(text, validate=True)
    if data is None:
        data = base64.b64decode(text, validate=True)
    # Validated text is canonical unless its length or the bits padding leaves unused differ.
    tail = data[len(data) - (len(data) % 3 or 3):]
    canonical = len(text) == 4 * ((len(data) + 2) // 3) and text[-4:] == pybase64.b64encode(tail).decode()
    return data, text if canonical else None


def _usage(raw: Any) -> Usage | None:
    """The provider's usage block; None when it sent none (or an unreadable one)."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details") or {}
    try:
        return Usage(
            text_in=int(details.get("text_tokens", raw.get("input_tokens", 0))),
            image_in=int(details.get("image_tokens", 0)),
            image_out=int(raw.get("output_tokens", 0)),
        )
    except (TypeError, ValueError, AttributeError):
        return None


def _retry_after(headers: httpx.Headers) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _until(deadline: float) -> anyio.CancelScope:
    """A scope that raises TimeoutError at `deadline` (anyio.current_time())."""
    return anyio.fail_after(max(0.0, deadline - anyio.current_time()))


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _ext(media_type: str) -> str:
    return {"image/jpeg": "jpg", "image/webp": "webp"}.get(media_type, "png")
