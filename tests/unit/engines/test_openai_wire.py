"""The OpenAI wire pieces of the upstream engine: SSE parsing across chunk boundaries, and the
multipart body of a relayed edit (sized, streamed, named as the openai SDK names parts)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagegate.domain import ImageJob
from imagegate.engines.openai_wire import LineTooLong, edit_form, loads_answer, sse_events
from imagegate.images.decode import inspect_image
from imagegate.images.tokens import MAX_TOKENS, Usage
from tests.fakes.upstream import parse_multipart

EVENTS = [
    {"type": "image_generation.partial_image", "b64_json": "QUJD" * 5000, "partial_image_index": 0},
    {"type": "image_generation.completed", "b64_json": "REVG", "usage": {"output_tokens": 1}},
]


def sse(events: list[dict[str, Any]], newline: bytes = b"\n") -> bytes:
    body = b"".join(
        b"event: " + e["type"].encode() + newline + b"data: " + json.dumps(e).encode() + newline + newline
        for e in events
    )
    return b": keep-alive" + newline + newline + body + b"data: [DONE]" + newline + newline + b"data: {}\n\n"


def parse(raw: bytes, cuts: list[int]) -> list[dict[str, Any]]:
    async def chunks() -> AsyncIterator[bytes]:
        last = 0
        for cut in sorted(set(cuts)) + [len(raw)]:
            yield raw[last:cut]
            last = cut

    async def main() -> list[dict[str, Any]]:
        return [event async for event in sse_events(chunks())]

    return anyio.run(main)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(sse(EVENTS))), max_size=12), st.sampled_from([b"\n", b"\r\n"]))
def test_sse_events_whatever_the_chunking(cuts: list[int], newline: bytes) -> None:
    """Events come out whole and in order however the bytes are cut; nothing after [DONE]."""
    assert parse(sse(EVENTS, newline), cuts) == EVENTS


def test_sse_refuses_an_endless_line() -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"
        while True:
            yield b"A" * 1000

    async def main() -> list[dict[str, Any]]:
        return [event async for event in sse_events(endless(), max_line=100_000)]

    with pytest.raises(LineTooLong):
        anyio.run(main)


def test_sse_multi_line_data_and_junk() -> None:
    raw = b'data: {"type": "a",\ndata: "n": 1}\n\ndata: not json\n\ndata: [1, 2]\n\ndata: {"type": "b"}\n\n'
    assert parse(raw, [7, 30]) == [{"type": "a", "n": 1}, {"type": "b"}]


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


class Sink:
    """What aiohttp's StreamWriter is to a payload: somewhere to write bytes."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk

    async def write_eof(self, chunk: bytes = b"") -> None:
        self.data += chunk


@pytest.mark.parametrize("filename", ["photo.png", 'holiday "snow" \\ phöto.png', None])
def test_edit_form_is_sized_and_names_parts_as_the_sdk_does(filename: str | None) -> None:
    image, mask = png((8, 8)), png((8, 8), "RGBA")
    job = ImageJob(
        model="m",
        prompt="p",
        kind="edit",
        images=(inspect_image(image, param="image", filename=filename),),
        mask=inspect_image(mask, param="mask"),
    )
    form = edit_form(job, {"model": "up-v2", "n": 2, "stream": False, "prompt": "a “quoted” prompt"})
    sink = Sink()
    anyio.run(form.write, sink)
    assert form.size == len(sink.data)  # known up front: a Content-Length, not chunked
    parts = parse_multipart(bytes(sink.data), form.content_type)
    # The file name as it stands in the header, escaped as httpx (the openai SDK) escapes it.
    sdk = httpx.Request("POST", "http://x", files={"image[]": (filename or "image-0.png", b"", "image/png")})
    wire_name = parse_multipart(b"".join(sdk.stream), sdk.headers["content-type"])[0].filename  # type: ignore[arg-type]
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("model", None, None),
        ("n", None, None),
        ("stream", None, None),
        ("prompt", None, None),
        ("image[]", wire_name, "image/png"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [p.data for p in parts] == [b"up-v2", b"2", b"false", "a “quoted” prompt".encode(), image, mask]


@pytest.mark.parametrize(
    "block",
    [
        {"output_tokens": 10**20},
        {"output_tokens": -1},
        {"input_tokens": 2**31},
        {"input_tokens_details": {"image_tokens": 10**12}},
        {"output_tokens": float("inf")},
    ],
)
def test_a_provider_usage_no_record_holds_is_not_believed(block: dict[str, Any]) -> None:
    """Else the final transaction would fail on PostgreSQL's Integer columns after the provider
    answered (and was paid); our own count is used instead."""
    from imagegate.engines.openai_wire import usage

    assert usage(block) is None
    assert usage({"output_tokens": MAX_TOKENS, "input_tokens": 0}) == Usage(image_out=MAX_TOKENS)


B64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", max_size=40).map(
    lambda s: s + "=" * (-len(s) % 4)
)
SPACE = st.sampled_from(["", " ", "\n  ", "\t", "\r\n"])
OTHER = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _render(value: Any, space: str) -> str:
    """JSON with `space` around every separator: the layouts providers actually send."""
    if isinstance(value, dict):
        items = [f"{space}{json.dumps(k)}{space}:{space}{_render(v, space)}" for k, v in value.items()]
        return "{" + ",".join(items) + space + "}"
    if isinstance(value, list):
        return "[" + ",".join(space + _render(v, space) for v in value) + space + "]"
    return json.dumps(value)


@settings(max_examples=300, deadline=None)
@given(
    images=st.lists(st.one_of(B64, OTHER), max_size=3),
    extra=st.dictionaries(st.sampled_from(["usage", "size", "b64_json", "note"]), OTHER, max_size=2),
    space=SPACE,
    slash=st.booleans(),
)
def test_loads_answer_is_orjson_loads(
    images: list[Any], extra: dict[str, Any], space: str, slash: bool
) -> None:
    """Whatever the layout, escapes, stray `b64_json` keys or values of other types: the body that
    cutting the base64 out and putting it back gives is the one a whole parse gives."""
    body = {
        "created": 1,
        **extra,
        "data": [{"b64_json": v, "revised_prompt": 'a "b64_json": x'} for v in images],
    }
    text = _render(body, space)
    if slash:
        text = text.replace("/", "\\/")  # PHP's json_encode escapes slashes
    assert loads_answer(text.encode()) == orjson.loads(text)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"data": [{"b64_json": "QUJD"}, {"b64_json": "REVG"}]}',
        b'{"data": [{"b64_json": "QUJD", "b64_json": "REVG"}]}',  # a duplicate key: the last wins
        b'{"data": [{"b64_json": "QUJD"}], "nested": {"b64_json": "REVG"}}',
        b'{"note": "\\"b64_json\\": \\"QUJD\\"", "data": [{"b64_json": "REVG"}]}',
        b'{"x\\"b64_json": "QUJD", "data": []}',  # the key inside another key
        b'{"data": [{"b64_json": "\\u0000b64_json 0"}]}',  # what the cut-out value reads as, sent
        # The mark, sent under a key spelled with an escape, where a cut-out value would go back:
        b'{"data": [{"b64\\u005fjson": "\\u0000b64_json 0"}], "x": {"b64_json": "QUJD"}}',
        b'{"data": [{"b64_json": "QUJD", "b64\\u005fjson": "\\u0000b64_json 0"}]}',
        b'{"data": [' + b", ".join([b'{"b64_json": "QUJD"}'] * 100) + b"]}",  # over MAX_CUTS
    ],
)
def test_loads_answer_odd_bodies(raw: bytes) -> None:
    assert loads_answer(raw) == orjson.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"data": [{"b64_json": "QUJD}]}',  # the string never ends
        b'{"data": [{"b64_json": "QU\xffJD"}]}',  # not UTF-8
        b'{"data": [{"b64_json": "QUJD"}]',  # cut short
        b'{"data": [{"b64_json": "QUJD"} {"b64_json": "REVG"}]}',
    ],
)
def test_loads_answer_refuses_what_orjson_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        orjson.loads(raw)
    with pytest.raises(ValueError):
        loads_answer(raw)
