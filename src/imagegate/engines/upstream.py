"""The upstream engine: one OpenAI-compatible channel, spoken to over HTTP (aiohttp).

It sends the client's own parameters (with the channel's model name) to the provider,
JSON for generations and for JSON edits, multipart (`image[]`, `mask`, decimal strings)
for file edits; it relays SSE streams event by event. It yields encoded images with the
provider's `usage` (FinalImage.extra["usage"]) and raises UpstreamError for failures,
marked retryable (connection errors, timeouts, 408, 429, 5xx, malformed bodies) or not
(a 4xx is the client's fault and is relayed unchanged), and whether the channel should be
disabled (401/403, or an error saying the account is out of balance).

aiohttp rather than httpx: a relayed call cost 0.2 ms of client overhead instead of 0.85 ms
(loopback, small bodies, same server), most of what a relay adds to a small request. Its
deadlines are asyncio's own (timeout_at): an anyio cancel scope cost 3-4x as much per request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from imagegate.domain import EngineEvent, FinalImage, ImageJob, PartialImage
from imagegate.engines.base import Capabilities
from imagegate.engines.fetch import Fetcher, FetchError, FetchRefused
from imagegate.engines.openai_wire import (
    LineTooLong,
    decoded,
    edit_form,
    image_bytes,
    loads_answer,
    retry_after,
    scrub,
    sse_events,
    usage,
)
from imagegate.errors import UpstreamError
from imagegate.images.encode import MEDIA_TYPES, sniff_format
from imagegate.images.tokens import Usage

MAX_ERROR_BODY = 1 << 20
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# Words in an upstream error that mean the provider account cannot pay (new-api's rule).
OUT_OF_BALANCE = ("insufficient_quota", "billing", "balance", "credit", "quota exceeded")
# Failures before the request reached the provider: it cannot have charged for them.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Why a channel is disabled (channels.py probes the two kinds differently).
KEY_REJECTED_REASON = "the provider answered {status} (key rejected)"
OUT_OF_BALANCE_REASON = "the provider account is out of balance"


Session = aiohttp.ClientSession  # what the composition root opens and the engines share


READ_BUFFER = 1024 * 1024


def new_session(max_connections: int = 1000) -> aiohttp.ClientSession:
    """The one client session every channel shares (created inside the running event loop).
    No cookie jar: one provider's cookies must never ride along to another channel."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        raise_for_status=False,
        # An answer is read whole (1.5 MB for a 1024x1024 PNG): at the default 64 KiB the reader
        # paused and resumed the socket every 128 KiB (read + parse: 2.47 -> 1.93 ms CPU).
        read_bufsize=READ_BUFFER,
    )


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One OpenAI-compatible channel, as the engine needs it (built from the stored channel by
    channels.py: engines never see a storage row)."""

    name: str
    base_url: str
    api_key: str = field(repr=False)  # never logged
    model_map: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 120.0
    provider: str = "openai"  # engines/providers.py: which wire the channel speaks
    options: Mapping[str, Any] = field(default_factory=dict)  # provider settings (Azure's deployment...)

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)


class UpstreamEngine:
    """Serves the models of one channel that speaks OpenAI's images API, and is the base of the
    other providers' adapters (engines/providers.py): they override the hooks `_url`, `_headers`,
    `_body` (and `_send` where the body is not JSON), `_complete` and `_client_error`, and inherit
    the deadlines, the failure classification and the stream relay."""

    capabilities = Capabilities()  # the route's capabilities come from the provider's model table
    kind = "OpenAI-compatible"

    def __init__(self, channel: UpstreamConfig, session: aiohttp.ClientSession, fetcher: Fetcher) -> None:
        self.channel = channel
        self.session = session
        self.fetcher = fetcher  # the image URLs in its answers: untrusted (engines/fetch.py)
        self.name = f"upstream:{channel.name}"

    def describe(self) -> str:
        return f"{self.kind} upstream channel '{self.channel.name}'"

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        # The channel's timeout bounds the whole exchange up to the result (a stream: up to its
        # headers; then each event must come within it), not each read, which a provider trickling
        # its body a byte at a time would never trip.
        timeout_s = self.channel.timeout_s
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._send(job)
        except (TimeoutError, aiohttp.ClientError) as exc:
            sent = not isinstance(exc, _NOT_SENT)
            what = "timed out" if isinstance(exc, TimeoutError) else "could not be reached"
            raise self._error(f"{what} ({type(exc).__name__})", retryable=True, maybe_billed=sent) from exc
        try:
            if response.status != 200:
                async with asyncio.timeout_at(deadline):
                    await self._raise_for(response)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                async for event in self._stream(response, job):
                    yield event
            else:
                async with asyncio.timeout_at(deadline):
                    events = await self._complete(response, job)
                for event in events:
                    yield event
        except TimeoutError as exc:
            raise self._error(
                f"timed out while sending the result (over {timeout_s:g} s)", retryable=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise self._error(f"broke off the response ({type(exc).__name__})", retryable=True) from exc
        finally:
            response.release()

    def _url(self, job: ImageJob) -> str:
        path = "/images/edits" if job.kind == "edit" else "/images/generations"
        return self.channel.base_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        """The channel's authentication."""
        return {"Authorization": f"Bearer {self.channel.api_key}"}

    def _body(self, job: ImageJob) -> dict[str, Any]:
        return {**job.passthrough, "model": self.channel.upstream_model(job.model)}

    def key_check(self) -> tuple[str, dict[str, str]]:
        """A free request that answers 200 while the key is accepted: (URL, headers) of a GET."""
        return self.channel.base_url.rstrip("/") + "/models", self._headers()

    def _timeout(self) -> aiohttp.ClientTimeout:
        # Each read must come within the channel's timeout (a stream's events too).
        return aiohttp.ClientTimeout(
            total=None, sock_connect=min(10.0, self.channel.timeout_s), sock_read=self.channel.timeout_s
        )

    async def _post_json(self, url: str, body: Any, headers: dict[str, str]) -> aiohttp.ClientResponse:
        # No redirects: a 307/308 would re-send the client's images and prompt to another host.
        return await self.session.post(
            url,
            data=orjson.dumps(body),
            headers={**headers, "Content-Type": "application/json"},
            timeout=self._timeout(),
            allow_redirects=False,
        )

    async def _send(self, job: ImageJob) -> aiohttp.ClientResponse:
        url, headers, body = self._url(job), self._headers(), self._body(job)
        if job.kind == "edit" and not job.relay_json:
            return await self.session.post(
                url,
                data=edit_form(job, body),
                headers=headers,
                timeout=self._timeout(),
                allow_redirects=False,
            )
        return await self._post_json(url, body, headers)

    async def _complete(self, response: aiohttp.ClientResponse, job: ImageJob) -> list[FinalImage]:
        raw = await response.read()
        try:
            body = loads_answer(raw)
            items = body["data"][: job.n]
            images = [image_bytes(item) for item in items]
            if not images:
                raise KeyError("data")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # {"data": [null]}: AttributeError
            raise self._error("answered with a malformed body", retryable=True) from exc
        fetched = [img if isinstance(img, tuple) else (await self._fetch(img, job), None) for img in images]
        reported = usage(body.get("usage"))
        echo = {k: body[k] for k in ("size", "quality", "background", "output_format") if k in body}
        fmt = body.get("output_format") or job.output_format
        # The usage is the request's: on the first image. Without one, the gateway's own token math bills.
        return [
            FinalImage(
                index=i,
                encoded=data,
                b64=b64,
                media_type=MEDIA_TYPES.get(fmt, "image/png"),
                usage=None if reported is None else reported if i == 0 else Usage(),
                echo=echo,
            )
            for i, (data, b64) in enumerate(fetched)
        ]

    async def _fetch(self, url: str, job: ImageJob) -> bytes:
        """An upstream that answers with URLs: fetch them now (they expire; ours are kept), with the
        guards of a client's URL, and keep only an image of the format asked for."""
        try:
            data, _ = await self.fetcher.get(url)
        except FetchRefused as exc:
            raise self._error(
                f"returned an image URL the gateway does not fetch ({exc})", retryable=True
            ) from exc
        except FetchError as exc:
            raise self._error(
                f"returned an image URL that could not be fetched ({exc})", retryable=True
            ) from exc
        found = sniff_format(data[:16])
        if found != job.output_format:
            raise self._error(
                f"returned {found or 'something that is not an image'} where a "
                f"{job.output_format} image was asked for",
                retryable=True,
            )
        return data

    async def _stream(self, response: aiohttp.ClientResponse, job: ImageJob) -> AsyncIterator[EngineEvent]:
        index = 0
        events = sse_events(response.content.iter_any())
        loop = asyncio.get_running_loop()
        # Each image event must come within the channel's timeout: keep-alive comments (which reset
        # aiohttp's read timer) and events of other types do not hold the stream open for ever.
        deadline = loop.time() + self.channel.timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    event = await anext(events)
            except StopAsyncIteration:
                break
            except LineTooLong as exc:
                raise self._error("sent an event line too long to be an image", retryable=False) from exc
            kind = str(event.get("type", ""))
            if "error" in event and not kind.endswith(("partial_image", "completed")):
                raise self._error(
                    "failed mid-stream",
                    retryable=False,
                    body=scrub({"error": event["error"]}, self.channel.api_key),
                    maybe_billed=False,
                )
            if not kind.endswith((".partial_image", ".completed")):
                continue  # an event type this relay does not know (keep-alives, future ones)
            try:
                data, b64 = decoded(event["b64_json"])
                partial_index = int(event.get("partial_image_index", 0))
            except (KeyError, TypeError, ValueError) as exc:
                raise self._error("sent a malformed stream event", retryable=False) from exc
            deadline = loop.time() + self.channel.timeout_s
            if kind.endswith(".partial_image"):
                yield PartialImage(index=index, partial_index=partial_index, encoded=data, b64=b64)
            else:
                fmt = event.get("output_format") or job.output_format
                reported = usage(event.get("usage"))
                yield FinalImage(
                    index=index,
                    encoded=data,
                    b64=b64,
                    media_type=MEDIA_TYPES.get(fmt, "image/png"),
                    usage=reported,
                )
                index += 1
                if index == job.n:
                    return
        if index < job.n:  # the stream ended (cleanly) before every image was delivered
            raise self._error("ended the stream before the image was complete", retryable=True)

    async def _raise_for(self, response: aiohttp.ClientResponse) -> None:
        # An error body is read up to 1 MiB: a provider (or whatever answers at its address) cannot
        # make the gateway hold a gigabyte to relay a 4xx.
        raw = await response.content.read(MAX_ERROR_BODY)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        raise self._failure(response.status, body, raw, retry_after(response.headers))

    def _failure(self, status: int, body: Any, raw: bytes, retry_after_s: float | None) -> UpstreamError:
        """The provider's non-200 answer as an UpstreamError: retryable or the client's fault, and
        whether the channel must be disabled (a rejected key, an account out of balance)."""
        message = json.dumps(body).lower() if body is not None else raw[:500].decode("utf-8", "replace")
        if status == 400:
            # A 400 is the client's fault unless its code or type says the account cannot pay; its
            # message may quote the client's own words ("... balance ..."), which must not disable a channel.
            error = body.get("error") if isinstance(body, dict) else None
            message = (
                " ".join(str(error.get(k) or "") for k in ("code", "type", "status")).lower()
                if isinstance(error, dict)
                else ""
            )
        disable = None
        if status in (401, 403):
            disable = KEY_REJECTED_REASON.format(status=status)
        elif status == 402 or (any(word in message for word in OUT_OF_BALANCE) and status in (400, 429)):
            disable = OUT_OF_BALANCE_REASON  # 402 Payment Required: whatever it says
        retryable = status in RETRYABLE_STATUS or disable is not None
        return UpstreamError(
            f"The upstream provider answered HTTP {status}.",
            status=status,
            retryable=retryable,
            channel=self.channel.name,
            upstream_body=self._client_error(status, body),
            disable_reason=disable,
            retry_after_s=retry_after_s,
        )

    def _client_error(self, status: int, body: Any) -> dict[str, Any] | None:  # noqa: ARG002
        """The provider's error as the OpenAI error body a client gets for a 4xx (None: the
        gateway's own). OpenAI's wire: its own body, with anything secret-shaped scrubbed."""
        if isinstance(body, dict) and "error" in body:
            return scrub(body, self.channel.api_key)  # type: ignore[no-any-return]
        return None

    def _error(
        self, what: str, *, retryable: bool, body: dict[str, Any] | None = None, maybe_billed: bool = True
    ) -> UpstreamError:
        """A failure after the request went out (unless `maybe_billed` says otherwise)."""
        return UpstreamError(
            f"The upstream provider {what}.",
            status=502,
            retryable=retryable,
            channel=self.channel.name,
            upstream_body=body,
            maybe_billed=maybe_billed,
        )
