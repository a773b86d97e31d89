"""JSON bodies: generated generation and edit requests, and raw bytes sent as application/json.

The invariant is in `invariant.py`: below 500, OpenAI's error body, nothing logged as an error.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from imagegate.flow.validate import EDIT_FIELDS, GENERATION_FIELDS
from tests.api.invariant import FUZZ, ErrorLog, check, check_stream, post_raw
from tests.api.strategies import IMAGES, data_url, images_values, json_bodies, json_values


def _fields(body: dict[str, Any], *implied: str) -> set[str]:
    return set(body) | {"prompt", *implied}


def _send_json(api: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    # json.dumps writes nan/inf as NaN/Infinity and lone surrogates as \udXXX escapes: both
    # reach the server as a client would send them.
    return post_raw(api, path, json.dumps(body).encode(), "application/json")


# --- generations ----------------------------------------------------------------------------


@FUZZ
@given(body=json_bodies(GENERATION_FIELDS))
@example(body={"prompt": "x", "quality": "\ud800"})
@example(body={"prompt": "x", "\udfff": 1})
@example(body={"prompt": "a \ud83d cat", "size": "64x64", "quality": "low"})
@example(body={"prompt": "x", "transparency": True, "output_format": "jpeg"})
@example(body={"prompt": "x", "image": ["http://[::1"]})
@example(body={"prompt": "x", "image": "data:image/png;base64,!!!"})
@example(body={"prompt": "x", "image": [data_url(IMAGES["png"])] * 17})
@example(body={"prompt": "x", "size": "64x64", "image": [data_url(IMAGES["png"])], "images": []})
@example(body={"prompt": "x", "mask": {"image_url": "http://127.0.0.1:1/m.png"}})
@example(body={"prompt": "x", "quality": [[[[[[[[[["deep"]]]]]]]]]]})
def test_generation_bodies(api: httpx.Client, server_log: ErrorLog, body: dict[str, Any]) -> None:
    resp = _send_json(api, "/v1/images/generations", body)
    check(resp, server_log, _fields(body))
    if resp.status_code == 200:
        check_stream(resp)


def _nested(depth: int) -> bytes:
    return b'{"prompt": "x", "n": ' + b"[" * depth + b"]" * depth + b"}"


TOKENS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"-1e999",
    b"1" * 5000,
    b'"\\ud800"',
    b'"\\udfff\\ud800"',
    b'"\\u0000"',
    b"true",
    b"null",
    b"[]",
    b"{}",
    b"0.0",
    b"-0",
    b"1.5",
]
raw_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.text(max_size=40).map(str.encode),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 120_000).map(lambda k: b"[" * k),
    st.integers(1, 120_000).map(lambda k: b'{"a":' * k),
    st.integers(500, 5_000).map(_nested),
    st.builds(
        lambda field, token: b'{"prompt": "x", "size": "64x64", "' + field.encode() + b'": ' + token + b"}",
        st.sampled_from(sorted(GENERATION_FIELDS)),
        st.sampled_from(TOKENS),
    ),
    st.sampled_from(
        [
            b'{"prompt": "\xff\xfe"}',
            b'{"prompt": "x"',
            b'\xef\xbb\xbf{"prompt": "x", "size": "64x64"}',
            json.dumps({"prompt": "x", "size": "64x64"}).encode("utf-16"),
            json.dumps({"prompt": "x", "size": "64x64"}).encode("utf-32-le"),
            b'{"prompt": "x", "prompt": 1}',
            b"\x00" * 10,
            b'{"prompt": "x"}' * 2,
        ]
    ),
)


@FUZZ
@given(content=raw_bodies, path=st.sampled_from(["/v1/images/generations", "/v1/images/edits"]))
@example(content=b"[" * 100_000, path="/v1/images/generations")
@example(content=_nested(2_000), path="/v1/images/edits")
@example(content=b'{"prompt": "x", "size": "64x64", "quality": "\\ud800"}', path="/v1/images/generations")
def test_raw_json_bodies(api: httpx.Client, server_log: ErrorLog, content: bytes, path: str) -> None:
    resp = post_raw(api, path, content, "application/json")
    check(resp, server_log)
    if resp.status_code == 200:
        check_stream(resp)


# --- edits ----------------------------------------------------------------------------------


@FUZZ
@given(body=json_bodies(EDIT_FIELDS), images=images_values)
@example(body={"prompt": "x"}, images=[{"image_url": "http://[::1"}])
@example(body={"prompt": "x"}, images=[{"image_url": "http://127.0.0.1:99999/"}])
@example(body={"prompt": "x"}, images=[])
@example(body={"prompt": "x", "images": None}, images=None)
@example(body={"prompt": "x", "image": [data_url(IMAGES["png"])]}, images=[])
def test_json_edits(api: httpx.Client, server_log: ErrorLog, body: dict[str, Any], images: Any) -> None:
    body.setdefault("images", images)
    resp = _send_json(api, "/v1/images/edits", body)
    check(resp, server_log, _fields(body, "images"))
    if resp.status_code == 200:
        check_stream(resp)


# --- asynchronous jobs ------------------------------------------------------------------------


@FUZZ
@given(body=json_bodies(GENERATION_FIELDS | {"webhook_url"}))
@example(body={"prompt": "x", "webhook_url": "http://[::1"})
@example(body={"prompt": "x", "webhook_url": "ftp://example.com/hook"})
@example(body={"prompt": "x", "webhook_url": "https://example.com/" + "a" * 5000})
@example(body={"prompt": "x", "webhook_url": ["https://example.com/"]})
@example(body={"prompt": "x", "stream": True})
def test_job_submissions(api: httpx.Client, server_log: ErrorLog, body: dict[str, Any]) -> None:
    """`Prefer: respond-async`: a 202 with a job, or the 4xx a synchronous call gets."""
    resp = api.post(
        "/v1/images/generations",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", "prefer": "respond-async"},
    )
    check(resp, server_log, _fields(body) | {"webhook_url"})
    if resp.status_code < 400:
        assert resp.status_code == 202 and resp.json()["object"] == "image.job", resp.text
