"""The OpenAI images wire format, as the upstream engine speaks it: the multipart body of an
edit (file parts streamed from their uploads, with a known length), SSE events parsed as they
arrive, base64 images and the `usage` block. No network here."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
import pybase64
from aiohttp.abc import AbstractStreamWriter

from imagegate.domain import ImageJob
from imagegate.images.tokens import MAX_TOKENS, Usage
from imagegate.payload import Payload


class UploadPart(aiohttp.payload.Payload):
    """A file part read from its upload in chunks, with its size known up front: the multipart
    body then has a Content-Length (aiohttp's own file payload sizes files by fstat(fileno()),
    reads them on a thread and closes them, which would leave nothing for a retry)."""

    def __init__(self, source: Payload, *, content_type: str, filename: str) -> None:
        super().__init__(source, content_type=content_type, filename=filename)
        self._size = source.size

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:  # noqa: ARG002
        raise TypeError("an image upload is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        for chunk in self._value.chunks():  # a temporary file in the page cache: no thread hop
            await writer.write(chunk)


def edit_form(job: ImageJob, fields: Mapping[str, Any]) -> aiohttp.MultipartWriter:
    """An edit's multipart body: the text fields as the upstream expects them (decimal strings,
    "true"/"false"), every image as `image[]` and the mask, named as the client named them."""
    form = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        part: aiohttp.payload.Payload = aiohttp.payload.BytesPayload(_form_value(value).encode())
        del part.headers["Content-Type"]  # a plain text field, as the openai SDK sends one
        part.headers["Content-Disposition"] = _disposition(name)
        form.append_payload(part)
    parts = [("image[]", f"image-{i}", img) for i, img in enumerate(job.images)]
    if job.mask is not None:
        parts.append(("mask", "mask", job.mask))
    for name, stem, img in parts:
        filename = img.filename or f"{stem}.{_ext(img.media_type)}"
        part = UploadPart(img.source, content_type=img.media_type, filename=filename)
        part.headers["Content-Disposition"] = _disposition(name, filename)
        form.append_payload(part)
    return form


# HTML5 form encoding, as httpx (and so the openai SDK) writes names: UTF-8 kept, quotes and
# control characters escaped. aiohttp's own header would percent-encode "a b.png" as "a%20b.png".
_ESCAPES = {0x22: "%22", 0x5C: "\\\\", **{c: f"%{c:02X}" for c in range(0x20) if c != 0x1B}}


def _disposition(name: str, filename: str | None = None) -> str:
    value = f'form-data; name="{name.translate(_ESCAPES)}"'
    return value + (f'; filename="{filename.translate(_ESCAPES)}"' if filename is not None else "")


MAX_LINE = 64 * 1024 * 1024  # a partial image's data line: a few MB of base64


class LineTooLong(ValueError):
    pass


async def sse_events(chunks: AsyncIterable[bytes], max_line: int = MAX_LINE) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of an SSE stream's `data:` lines, each as soon as its blank line arrives.
    Lines are split here: a partial image's line is over a megabyte, past aiohttp's readline limit.
    Each byte is scanned once, however small the chunks (joining them anew for each chunk cost
    0.5 s of CPU for a 3 MB line in 4 KiB chunks); a line over `max_line` raises LineTooLong."""
    data: list[bytes] = []
    buffer = bytearray()
    async for chunk in chunks:
        scanned = len(buffer)
        buffer += chunk
        lines = []
        start = 0
        while (end := buffer.find(b"\n", scanned)) != -1:
            lines.append(bytes(buffer[start:end]))
            start = scanned = end + 1
        del buffer[:start]
        if len(buffer) > max_line:
            raise LineTooLong(f"an event line over {max_line} bytes")
        for raw in lines:
            line = raw.removesuffix(b"\r")
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                payload = b"\n".join(data)
                data = []
                if payload.strip() == b"[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event


def retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


# A "b64_json" key and the quote that opens its string value: after `{` or `,` (where no string can
# hold an unescaped quote), so never text inside another string.
_B64_VALUE = re.compile(rb'[{,][ \t\r\n]*"b64_json"[ \t\r\n]*:[ \t\r\n]*"')
_MARK = "\x00b64_json "  # what a cut-out value reads as until it is put back; JSON escapes a NUL
MAX_CUTS = 64  # more images than any provider answers with: parse such a body whole


def loads_answer(raw: bytes) -> Any:
    """`orjson.loads(raw)` for an images answer, with each `"b64_json"` string of `data` cut out
    before parsing and put back after: orjson checks a 1.5 MB string character by character
    (0.46 ms), where `bytes.find` skips to its closing quote (0.14 ms in all). A cut-out value is
    base64, which has no escapes. The whole body is parsed as it is when a value has a backslash
    (`\\/`), when the body has a `\\u0000` anywhere (which could spell the mark), with more than
    MAX_CUTS values, or when a value does not come back where `data` has it. One leniency: a
    control character in a cut-out value, which orjson would refuse, is kept, and the base64
    decoding refuses it instead (`decoded`): either way the answer is malformed."""
    if raw.find(b"\\u0000") != -1:
        return orjson.loads(raw)
    cut: list[bytes] = []
    kept: list[bytes] = []
    at = 0  # copied up to here
    while (found := _B64_VALUE.search(raw, at)) is not None:
        start = found.end()
        end = raw.find(b'"', start)
        if end == -1 or raw.find(b"\\", start, end) != -1 or len(cut) == MAX_CUTS:
            return orjson.loads(raw)
        kept += (raw[at:start], f"{_MARK}{len(cut)}".encode().replace(b"\x00", b"\\u0000"))
        cut.append(raw[start:end])
        at = end
    if not cut:
        return orjson.loads(raw)
    body = orjson.loads(b"".join((*kept, raw[at:])))
    items = body.get("data") if isinstance(body, dict) else None
    put = 0
    for item in items if isinstance(items, list) else ():
        value = item.get("b64_json") if isinstance(item, dict) else None
        if isinstance(value, str) and value == f"{_MARK}{put}":
            item["b64_json"] = cut[put].decode("utf-8")  # not ASCII: `decoded` says what is wrong
            put += 1
    return body if put == len(cut) else orjson.loads(raw)


def image_bytes(item: Mapping[str, Any]) -> tuple[bytes, str | None] | str:
    """A b64_json item's bytes (and its text, see _decoded); a url item's URL."""
    if item.get("b64_json"):
        return decoded(item["b64_json"])
    if item.get("url"):
        return str(item["url"])
    raise KeyError("b64_json")


def decoded(text: Any) -> tuple[bytes, str | None]:
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
    tail = data[len(data) - (len(data) % 3 or 3) :]
    canonical = len(text) == 4 * ((len(data) + 2) // 3) and text[-4:] == pybase64.b64encode(tail).decode()
    return data, text if canonical else None


def usage(raw: Any) -> Usage | None:
    """The provider's usage block; None when it sent none (or an unreadable one)."""
    if not isinstance(raw, dict):
        return None
    block: dict[str, Any] = raw
    details: dict[str, Any] = block.get("input_tokens_details") or {}
    try:
        usage = Usage(
            text_in=int(details.get("text_tokens", block.get("input_tokens", 0))),
            image_in=int(details.get("image_tokens", 0)),
            image_out=int(block.get("output_tokens", 0)),
        )
    except (TypeError, ValueError, AttributeError, OverflowError):  # OverflowError: int(1e999)
        return None
    # A count no usage record holds, or a negative one, is not believed: our own count is used.
    counts = (usage.text_in, usage.image_in, usage.image_out)
    return usage if all(0 <= n <= MAX_TOKENS for n in counts) else None


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _ext(media_type: str) -> str:
    return {"image/jpeg": "jpg", "image/webp": "webp"}.get(media_type, "png")


# Secret-shaped text a provider may echo: a bearer token, an Authorization header, an sk-… key.
_SECRETS = re.compile(
    r"(?i)\b(?:bearer\s+|authorization\s*[:=]\s*(?:bearer\s+)?)[^\s\"',;]+|\bsk-[A-Za-z0-9_\-]{8,}"
)


def scrub(value: Any, secret: str) -> Any:
    """`value` (a relayed body: dicts, lists, strings) with the channel's key and anything shaped
    like an Authorization header or an API key replaced by "[redacted]"."""
    if isinstance(value, str):
        if secret:
            value = value.replace(secret, "[redacted]")
        return _SECRETS.sub("[redacted]", value)
    if isinstance(value, dict):
        return {k: scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value
