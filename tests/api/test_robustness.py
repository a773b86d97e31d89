"""Nothing a client sends makes the server answer 500 or log a traceback.

Hypothesis drives the real app (the session's uvicorn server on loopback) with generated
requests. Every answer must be below 500; every 4xx must carry OpenAI's error body
(message/type/param/code, a non-empty message; moderation_details only on a moderation
block) and, for errors about a
parameter, a `param` that names a field the request sent (or the one it lacked). Errors
logged by the server (imagegate's "unhandled error", uvicorn's "Exception in ASGI
application") fail the test too, so failures after the response has started count.

Successful requests are kept cheap: sizes are small, quality mostly "low".
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from imagegate.flow.validate import EDIT_FIELDS, GENERATION_FIELDS
from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from tests.conftest import LiveServer, make_settings, run_server
from tests.imaging import encode, mask_png, noise
from tests.schemas import validate

# IMAGEGATE_FUZZ_EXAMPLES=2000 for a deeper run than CI's.
FUZZ = settings(
    max_examples=int(os.environ.get("IMAGEGATE_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ERROR_KEYS = {"message", "type", "param", "code"}
# Codes of errors about one request field: their `param` must name it.
PARAM_CODES = {
    "unknown_parameter", "missing_required_parameter", "invalid_value", "invalid_type",
    "invalid_image_file", "unsupported_file_mimetype", "model_not_found",
}


# --- the server, a client, and the server's error log --------------------------------------


class _ErrorLog(logging.Handler):
    """Collects ERROR records of imagegate and uvicorn (tracebacks of unhandled errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
                 for r in self.records]
        self.records.clear()
        return found


@pytest.fixture(scope="module")
def server_log() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    loggers = [logging.getLogger(name) for name in ("imagegate", "uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def api(server: LiveServer, api_key: str, server_log: _ErrorLog) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as c:
        yield c


def assert_error_body(resp: httpx.Response) -> dict[str, Any]:
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    extra = set(err) - ERROR_KEYS
    allowed = {"moderation_details"} if err.get("code") == "moderation_blocked" else set()
    assert ERROR_KEYS <= set(err) and extra <= allowed, err
    assert isinstance(err["message"], str) and err["message"].strip(), err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["param"] is None or isinstance(err["param"], str), err  # (a key "" is named "")
    assert err["code"] is None or isinstance(err["code"], str), err
    validate("Error", err)
    return err  # type: ignore[no-any-return]


def _event(label: str) -> None:
    """The mix of answers, shown by pytest --hypothesis-show-statistics."""
    if currently_in_test_context():
        event(label)


def check(
    resp: httpx.Response, log: _ErrorLog, fields: set[str] | None = None
) -> dict[str, Any] | None:
    """The invariant: < 500, OpenAI's error body on 4xx, nothing logged as an error.

    `fields`: the parameter names the request sent (plus those it may be told it lacks);
    an error about a parameter must name one of them.
    """
    assert resp.status_code < 500, (resp.status_code, resp.text[:2000])
    assert not (logged := log.take()), logged
    if resp.status_code < 400:
        _event(f"{resp.status_code}")
        return None
    err = assert_error_body(resp)
    _event(f"{resp.status_code} {err['code']} {err['param']}")
    if fields is not None and err["code"] in PARAM_CODES:
        assert err["param"] is not None, err
        root = re.split(r"[\[.]", err["param"], maxsplit=1)[0]
        assert root in fields or err["param"] in fields, (err, sorted(fields))
    return err


def check_stream(resp: httpx.Response) -> None:
    """A streamed 200 ends with completed events and carries no error event."""
    if not resp.headers.get("content-type", "").startswith("text/event-stream"):
        assert "data" in resp.json()
        return
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events and all(e["type"] != "error" for e in events), events[-1:]
    assert events[-1]["type"].endswith(".completed")


def post_raw(api: httpx.Client, path: str, content: bytes, content_type: str) -> httpx.Response:
    return api.post(path, content=content, headers={"content-type": content_type})


# --- images and values ----------------------------------------------------------------------


def _images() -> dict[str, bytes]:
    rgba = noise(32, 32, 2, "RGBA")
    grey = noise(32, 32, 3, "L")
    palette = noise(32, 32, 4).convert("P")
    palette.info["transparency"] = 0
    return {
        "png": encode(noise(32, 32, 1)),
        "rgba": encode(rgba),
        "la": encode(rgba.convert("LA")),
        "grey16": encode(grey.convert("I;16")),
        "palette": encode(palette, "PNG"),
        "jpeg": encode(noise(40, 24, 5), "JPEG"),
        "webp": encode(noise(24, 40, 6), "WEBP"),
        "gif": encode(noise(8, 8, 7), "GIF"),
        "mask": mask_png(32, 32, (0, 0, 16, 16)),
    }


IMAGES = _images()
VALID_IMAGES = [IMAGES[k] for k in ("png", "rgba", "la", "grey16", "palette", "jpeg", "webp")]


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image with a few bytes changed after its signature, maybe truncated."""
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(12, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


image_bytes = st.one_of(
    st.sampled_from(list(IMAGES.values())),
    mutated_images(),
    st.binary(max_size=64),
)

odd_text = st.text(st.characters(categories=["Cs", "Cc", "Nd", "No", "Zs", "So"]), min_size=1, max_size=6)
texts = st.one_of(st.text(max_size=24), odd_text)
huge_ints = st.one_of(
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 2**64 + 1]),
    # 4001 digits: Python's JSON reads up to 4300
    st.builds(pow, st.sampled_from([10, -10]), st.sampled_from([40, 4001])),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    huge_ints,
    st.floats(),  # nan and +-inf are sent as NaN / Infinity (Python's JSON extension)
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
digit_strings = st.sampled_from(["9" * 5000, "-" + "9" * 5000, "²", "١٢", "٣", " 2 ", "0x10", "1e3", "+1"])

BAD_DATA_URLS = [
    "data:image/png;base64,!!!",
    "data:,",
    "data:;base64,",
    "data:image/png;base64,",
    "data:image/png,raw-not-base64",
    "data:image/png;base64,%zz%",
    "data:image/png;base64,%FF%FE",
    "data:text/plain;base64,aGVsbG8=",
    "data:image/png;base64,A",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:",
    "data:image/png;base64;base64,AAAA",
]
BAD_URLS = [
    "http://127.0.0.1:1/x.png",
    "https://127.0.0.1:1/x.png",
    "http://[::1",
    "http://[::1]:1/",
    "http://127.0.0.1:99999/",
    "http://127.0.0.1:-1/",
    "http://",
    "https://",
    "http:///x",
    "http://:80/",
    "http://a b/",
    "http://127.0.0.1:1/\u00e9\u2603",
    "ftp://127.0.0.1/x",
    "file:///etc/passwd",
    "",
    "   ",
]
image_urls = st.one_of(
    st.sampled_from(BAD_DATA_URLS + BAD_URLS),
    image_bytes.map(data_url),
    st.builds(lambda data, mt: data_url(data, mt), image_bytes, st.sampled_from(["", "image/jpeg", "x/y"])),
    st.text(max_size=30).map(lambda path: "http://127.0.0.1:1/" + path),
    texts,
)
image_refs = st.one_of(
    image_urls,
    st.builds(lambda url: {"image_url": url}, image_urls),
    st.builds(lambda fid: {"file_id": fid}, texts),
    st.builds(lambda url, k, v: {"image_url": url, k: v}, image_urls, st.text(max_size=5), json_scalars),
    json_values,
)
good_refs = st.lists(
    st.sampled_from(VALID_IMAGES).map(lambda data: {"image_url": data_url(data)}), min_size=1, max_size=3
)
images_values = st.one_of(
    good_refs,
    good_refs,
    st.lists(image_refs, max_size=4),
    st.lists(st.just({"image_url": data_url(IMAGES["png"])}), min_size=15, max_size=40),
    st.lists(st.just("data:image/png;base64,!!!"), min_size=100, max_size=2000),
    json_values,
)

SMALL_SIZES = ["64x64", "96x64", "64 X 80", "64×64", "auto"]
# Values a field accepts (small, cheap ones), so that generated requests get past validation.
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.one_of(st.sampled_from(["a cat", "a tall poster", "透明背景的猫", "a nike logo"]), texts),
    "model": st.sampled_from(["gpt-image-1", "gpt-image-2", "dall-e-3", "", "gpt-image-1/../x"]),
    "n": st.integers(0, 3),
    "quality": st.sampled_from(["low", "low", "auto", "hd"]),
    "size": st.sampled_from(SMALL_SIZES + ["64x64x64", "0x0", "4000x1000", "1x99999999999999"]),
    "background": st.sampled_from(["transparent", "opaque", "auto", "none"]),
    "moderation": st.sampled_from(["auto", "low"]),
    "output_format": st.sampled_from(["png", "jpeg", "webp", "gif"]),
    "format": st.sampled_from(["png", "jpeg", "webp"]),
    "output_compression": st.integers(-1, 101),
    "compression": st.integers(0, 100),
    "stream": st.booleans(),
    "partial_images": st.integers(0, 4),
    "response_format": st.sampled_from(["url", "b64_json", "xml"]),
    "user": texts,
    "safety_identifier": texts,
    "seed": st.one_of(st.integers(0, 2**32 - 1), huge_ints),
    "transparency": st.booleans(),
    "effort": st.sampled_from(["low", "medium", "high"]),
    "complexity": st.sampled_from(["low", "high", "max"]),
    "input_fidelity": st.sampled_from(["low", "high"]),
    "image": st.one_of(image_urls, st.lists(image_urls, max_size=3)),
    "images": images_values,
    "mask": st.one_of(st.just({"image_url": data_url(IMAGES["mask"])}),
                      st.builds(lambda url: {"image_url": url}, image_urls)),
}


@st.composite
def json_bodies(draw: st.DrawFn, fields: frozenset[str]) -> dict[str, Any]:
    """A JSON object over the known field names (good or junk values), plus random keys.

    Most bodies have a small size and low quality, so those that succeed stay cheap."""
    body: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        body["prompt"] = draw(GOOD["prompt"])
    if draw(st.integers(0, 9)):
        body["size"] = draw(st.sampled_from(SMALL_SIZES[:-1]))
    if draw(st.integers(0, 2)):
        body["quality"] = "low"
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=6, unique=True)):
        good = GOOD.get(name)
        body[name] = draw(good | json_values if good is not None else json_values)
    if body.get("size") == "auto" or "size" not in body:
        body["n"] = 1  # the automatic sizes are 1024 px: one image is enough
    if draw(st.integers(0, 4)) == 0:
        body.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    return body


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
def test_generation_bodies(api: httpx.Client, server_log: _ErrorLog, body: dict[str, Any]) -> None:
    resp = _send_json(api, "/v1/images/generations", body)
    check(resp, server_log, _fields(body))
    if resp.status_code == 200:
        check_stream(resp)


def _nested(depth: int) -> bytes:
    return b'{"prompt": "x", "n": ' + b"[" * depth + b"]" * depth + b"}"


TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 5000, b'"\\ud800"',
          b'"\\udfff\\ud800"', b'"\\u0000"', b"true", b"null", b"[]", b"{}", b"0.0", b"-0", b"1.5"]
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
        st.sampled_from(sorted(GENERATION_FIELDS)), st.sampled_from(TOKENS),
    ),
    st.sampled_from([
        b'{"prompt": "\xff\xfe"}', b'{"prompt": "x"', b'\xef\xbb\xbf{"prompt": "x", "size": "64x64"}',
        json.dumps({"prompt": "x", "size": "64x64"}).encode("utf-16"),
        json.dumps({"prompt": "x", "size": "64x64"}).encode("utf-32-le"),
        b'{"prompt": "x", "prompt": 1}', b"\x00" * 10, b'{"prompt": "x"}' * 2,
    ]),
)


@FUZZ
@given(content=raw_bodies, path=st.sampled_from(["/v1/images/generations", "/v1/images/edits"]))
@example(content=b"[" * 100_000, path="/v1/images/generations")
@example(content=_nested(2_000), path="/v1/images/edits")
@example(content=b'{"prompt": "x", "size": "64x64", "quality": "\\ud800"}', path="/v1/images/generations")
def test_raw_json_bodies(api: httpx.Client, server_log: _ErrorLog, content: bytes, path: str) -> None:
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
def test_json_edits(
    api: httpx.Client, server_log: _ErrorLog, body: dict[str, Any], images: Any
) -> None:
    body.setdefault("images", images)
    resp = _send_json(api, "/v1/images/edits", body)
    check(resp, server_log, _fields(body, "images"))
    if resp.status_code == 200:
        check_stream(resp)


TEXT_FIELDS = sorted(EDIT_FIELDS - {"image", "image[]", "mask", "images"})
FILE_FIELDS = ["image", "image", "image[]", "image[0]", "image[3]", "mask", "images", "file", "prompt"]
PART_TYPES = ["image/png", "image/jpeg", "image/webp", "application/octet-stream", "text/plain",
              "image/gif", "IMAGE/PNG; charset=binary", ""]
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10)
# Part names as httpx sends them unchanged (it escapes '"' and '\\' in names).
part_names = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=10
)


@st.composite
def multipart_parts(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    data: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        data["prompt"] = draw(st.sampled_from(["a cat", "remove the background", "透明背景"]) | printable)
    if draw(st.integers(0, 2)):
        data["size"] = draw(st.sampled_from(["64x64", "auto", "80x64"]))
    if draw(st.integers(0, 2)):
        data["quality"] = "low"
    for name in draw(st.lists(st.sampled_from(TEXT_FIELDS), max_size=5, unique=True)):
        value = draw(st.one_of(GOOD.get(name, st.nothing()).map(_form_value), printable, digit_strings))
        data[name] = value
    if draw(st.integers(0, 5)) == 0:  # a file field sent as text, or an unknown one
        data[draw(st.sampled_from(["image", "image[]", "mask", "images"]) | part_names)] = draw(printable)
    good_file = st.tuples(
        st.sampled_from(["image", "image[]"]),
        # (httpx sends a part with an empty filename as a text field)
        st.tuples(st.sampled_from(["a.png", "photo", "x.jpg"]), st.sampled_from(VALID_IMAGES),
                  st.sampled_from(PART_TYPES)),
    )
    any_file = st.tuples(
        st.sampled_from(FILE_FIELDS) | part_names,
        st.tuples(printable.filter(bool) | st.just(""), image_bytes, st.sampled_from(PART_TYPES)),
    )
    files = draw(st.lists(good_file, min_size=1, max_size=2) | st.lists(any_file, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        files.append(("mask", ("m.png", IMAGES["mask"], "image/png")))
    return data, files


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "replace").decode()  # a form value is bytes: no lone surrogates


def _multipart_fields(data: dict[str, Any], files: list[tuple[str, Any]]) -> set[str]:
    return set(data) | {name for name, _ in files} | {"prompt", "image"}


@FUZZ
@given(parts=multipart_parts())
@example(parts=({"prompt": "x", "n": "9" * 5000}, [("image", ("a.png", IMAGES["png"], "image/png"))]))
@example(parts=({"prompt": "x", "seed": "-" + "9" * 5000}, [("image", ("a.png", IMAGES["png"], ""))]))
@example(parts=({"prompt": "x", "mask": "data:image/png;base64,AAAA"},
                [("image", ("a.png", IMAGES["png"], "image/png"))]))
@example(parts=({"prompt": "x", "size": "64x64"},
                [("image", ("a.png", IMAGES["png"], "image/png")), ("images", ("b.png", IMAGES["png"], ""))]))
@example(parts=({"prompt": "x", "size": "64x64"}, [("image", ("a.png", IMAGES["png"], "image/png")),
                                                   ("mask", ("m.png", IMAGES["mask"], "image/png")),
                                                   ("mask", ("n.png", IMAGES["png"], "image/png"))]))
def test_multipart_edits(
    api: httpx.Client, server_log: _ErrorLog, parts: tuple[dict[str, Any], list[tuple[str, Any]]]
) -> None:
    data, files = parts
    resp = api.post("/v1/images/edits", data=data, files=files or [("x", ("x", b"", "text/plain"))])
    check(resp, server_log, _multipart_fields(data, files) | {"x"})
    if resp.status_code == 200:
        check_stream(resp)


@st.composite
def raw_multipart(draw: st.DrawFn) -> tuple[str, bytes]:
    """Hand-made multipart bodies: odd boundaries, headers, truncation, junk."""
    boundary = draw(st.sampled_from(["b", "x" * 70, "a b", "", "--", "é"]) | printable)
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["prompt", "image", "mask", "n", ""]) | printable)
        header = draw(st.sampled_from([
            f'Content-Disposition: form-data; name="{name}"',
            f'Content-Disposition: form-data; name="{name}"; filename="a.png"\r\nContent-Type: image/png',
            f"Content-Disposition: form-data; name={name}",
            "Content-Disposition: attachment",
            "X-Nothing: 1",
            "",
        ]))
        value = draw(st.sampled_from([b"a cat", IMAGES["png"], b"\xff\xfe"]) | st.binary(max_size=30))
        parts.append(f"--{boundary}\r\n{header}\r\n\r\n".encode() + value + b"\r\n")
    body = b"".join(parts) + draw(st.sampled_from([f"--{boundary}--\r\n".encode(), b"", b"--"]))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    content_type = draw(st.sampled_from([
        f"multipart/form-data; boundary={boundary}",
        f'multipart/form-data; boundary="{boundary}"',
        "multipart/form-data",
        "multipart/form-data; boundary=",
        f"Multipart/Form-Data; boundary={boundary}",
        f"multipart/form-data;boundary={boundary};charset=utf-16",
        "multipart/form-dataX",
    ]))
    return content_type, body


CUT_SHORT = (  # a multipart body without its closing boundary
    b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n'
    b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n" + IMAGES["png"]
)


@FUZZ
@given(request=raw_multipart())
@example(request=("multipart/form-data; boundary=b", CUT_SHORT))
@example(request=("multipart/form-data; boundary=b", CUT_SHORT + b"\r\n--b--\r\n"))
def test_raw_multipart(api: httpx.Client, server_log: _ErrorLog, request: tuple[str, bytes]) -> None:
    content_type, body = request
    try:
        resp = api.post("/v1/images/edits", content=body,
                        headers={"content-type": content_type.encode("utf-8")})  # type: ignore[dict-item]
    except httpx.LocalProtocolError:
        return  # a header the client library itself refuses to send
    check(resp, server_log)


# --- answers that used to lose data or name the wrong field -------------------------------

PNG_URL = data_url(IMAGES["png"])
ONE_IMAGE = [("image", ("a.png", IMAGES["png"], "image/png"))]


@pytest.mark.parametrize(
    ("path", "request_kwargs", "code", "param"),
    [
        # The guide's `image` on a generation: errors name `image`, not `images[0]`.
        ("/v1/images/generations", {"json": {"prompt": "x", "image": "data:image/png;base64,!!!"}},
         "invalid_image_file", "image"),
        ("/v1/images/generations", {"json": {"prompt": "x", "image": [PNG_URL, "data:,"]}},
         "invalid_value", "image[1]"),
        ("/v1/images/generations", {"json": {"prompt": "x", "image": [PNG_URL] * 17}},
         "invalid_value", "image"),
        # Both spellings at once: one of them was silently ignored.
        ("/v1/images/edits", {"json": {"prompt": "x", "images": [{"image_url": PNG_URL}], "image": PNG_URL}},
         "invalid_value", "image"),
        # A JSON edit lacks `images`, the field it sends.
        ("/v1/images/edits", {"json": {"prompt": "x", "images": []}}, "missing_required_parameter", "images"),
        ("/v1/images/edits", {"json": {"prompt": "x", "image[]": [PNG_URL]}}, "unknown_parameter", "image[]"),
        # transparency=true implies the background: the error names the field that was sent.
        ("/v1/images/generations", {"json": {"prompt": "x", "transparency": True, "output_format": "jpeg"}},
         "invalid_value", "transparency"),
        # A falsy model of the wrong type was quietly the default model.
        ("/v1/images/generations", {"json": {"prompt": "x", "model": False}}, "invalid_type", "model"),
        ("/v1/images/generations", {"json": {"prompt": "x", "model": []}}, "invalid_type", "model"),
        # A generation's mask is refused by name, not fetched first.
        ("/v1/images/generations", {"json": {"prompt": "x", "mask": {"image_url": "http://127.0.0.1:1/m"}}},
         "unknown_parameter", "mask"),
        ("/v1/images/edits", {"json": {"prompt": "x", "images": [{"image_url": "http://[::1"}]}},
         "invalid_value", "images[0]"),
        ("/v1/images/edits", {"json": {"prompt": "x", "images": [{"image_url": "http://127.0.0.1:99999/"}]}},
         "invalid_value", "images[0]"),
        # Multipart parts that were silently dropped.
        ("/v1/images/edits", {"data": {"prompt": "x", "mask": PNG_URL}, "files": ONE_IMAGE},
         "invalid_type", "mask"),
        ("/v1/images/edits", {"data": {"prompt": "x", "images": "a"}, "files": ONE_IMAGE},
         "unknown_parameter", "images"),
        ("/v1/images/edits", {"data": {"prompt": "x"},
                              "files": [*ONE_IMAGE, ("images", ("b.png", IMAGES["png"]))]},
         "unknown_parameter", "images"),
        ("/v1/images/edits", {"data": {"prompt": "x"}, "files": [*ONE_IMAGE, ("n", ("n.txt", b"2"))]},
         "invalid_type", "n"),
        ("/v1/images/edits", {"data": {"prompt": "x"}, "files": [
            *ONE_IMAGE, ("mask", ("m.png", IMAGES["mask"])), ("mask", ("n.png", IMAGES["mask"]))]},
         "invalid_value", "mask"),
        # Multipart numbers too long to convert.
        ("/v1/images/edits", {"data": {"prompt": "x", "n": "9" * 5000}, "files": ONE_IMAGE},
         "invalid_value", "n"),
    ],
)
def test_fixed_answers(
    api: httpx.Client, server_log: _ErrorLog, path: str, request_kwargs: dict[str, Any], code: str, param: str
) -> None:
    resp = api.post(path, **request_kwargs)
    err = check(resp, server_log)
    assert err is not None and (err["code"], err["param"]) == (code, param), err


def test_multipart_cut_short_is_refused(api: httpx.Client, server_log: _ErrorLog) -> None:
    """Starlette returns the parts before the cut and drops the rest without a word."""
    resp = post_raw(api, "/v1/images/edits", CUT_SHORT, "multipart/form-data; boundary=b")
    err = check(resp, server_log)
    assert err is not None and "closing boundary" in err["message"], err


# --- the other routes, headers --------------------------------------------------------------

HEX = "0123456789abcdef"


@FUZZ
@given(
    name=st.one_of(
        st.text(max_size=80),
        st.builds(lambda h, ext: h + ext, st.text(HEX, min_size=64, max_size=64),
                  st.sampled_from([".png", ".jpeg", ".webp", ".gif", ".png\n", ""])),
    ),
    expires=st.one_of(st.text(max_size=12), st.integers(-5, 2**70).map(str), digit_strings,
                      st.just(str(int(time.time()) + 3600))),
    signature=st.one_of(st.text(max_size=70), st.text(HEX, min_size=64, max_size=64)),
    drop=st.sampled_from([None, "expires", "signature"]),
)
@example(name="a" * 64 + ".png", expires="²", signature="x", drop=None)
@example(name="a" * 64 + ".png", expires="9" * 5000, signature="x", drop=None)
@example(name="a" * 64 + ".png", expires="9" * 20, signature="é" * 64, drop=None)
def test_signed_file_route(
    api: httpx.Client, server_log: _ErrorLog, name: str, expires: str, signature: str, drop: str | None
) -> None:
    params = {"expires": expires, "signature": signature}
    if drop is not None:
        del params[drop]
    resp = api.get(f"/v1/images/files/{quote(name, safe='')}", params=params, headers={"authorization": ""})
    check(resp, server_log)
    assert resp.status_code in (200, 307, 403, 404), resp.text  # 307: a "/" at the end


@FUZZ
@given(model_id=st.text(min_size=1, max_size=40), slashes=st.booleans())
@example(model_id="gpt-image-1", slashes=False)
@example(model_id="a/b/../c", slashes=True)
@example(model_id="模型\u0000", slashes=False)
def test_model_ids(api: httpx.Client, server_log: _ErrorLog, model_id: str, slashes: bool) -> None:
    resp = api.get("/v1/models/" + quote(model_id, safe="/" if slashes else ""))
    check(resp, server_log)


latin1 = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
)


@st.composite
def header_sets(draw: st.DrawFn, key: str) -> dict[str, bytes]:
    headers: dict[str, bytes] = {}
    auth = draw(st.one_of(
        st.none(),
        st.sampled_from([f"Bearer {key}", f"bearer {key}", f"Bearer  {key} ", "Bearer", "Bearer ",
                         f"Basic {key}", key, f"Bearer {key}x", "Bearer sk-ig-\u00e9\u00ff"]),
        latin1,
    ))
    if auth is not None:
        headers["authorization"] = auth.encode("latin-1")
    content_type = draw(st.one_of(
        st.none(),
        st.sampled_from([
            "application/json", "application/json; charset=utf-8", "application/JSON",
            "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=zz",
            "multipart/mixed; boundary=zz", "text/plain", "application/x-www-form-urlencoded", "",
        ]),
        latin1,
    ))
    if content_type is not None:
        headers["content-type"] = content_type.encode("latin-1")
    if draw(st.integers(0, 3)) == 0:
        idempotency_key = draw(st.sampled_from(["k", "x" * 5000, " ", "é"]) | latin1)
        headers["idempotency-key"] = idempotency_key.encode("latin-1")
    if draw(st.integers(0, 4)) == 0:
        headers["host"] = draw(st.sampled_from(["[::1", "a b", "\u00e9", "x:99999", ":", "[", "h:1:2"])
                               | latin1).encode("latin-1")
    return headers


REQUEST_BODIES = [
    b"",
    json.dumps({"prompt": "a cat", "size": "64x64", "quality": "low"}).encode(),
    b"--zz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n--zz--\r\n",
    b"prompt=a+cat",
    b"\xff\x00",
]


@FUZZ
@given(
    data=st.data(),
    method=st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]),
    path=st.sampled_from([
        "/v1/images/generations", "/v1/images/edits", "/v1/models", "/v1/models/gpt-image-1",
        "/v1/images/files/x.png", "/healthz", "/v1/nothing", "/v1/images/edits/", "/openapi.json",
    ]),
    body=st.sampled_from(REQUEST_BODIES),
)
def test_headers(
    api: httpx.Client, api_key: str, server_log: _ErrorLog, data: st.DataObject, method: str, path: str,
    body: bytes,
) -> None:
    headers = data.draw(header_sets(api_key))
    request = httpx.Request(method, str(api.base_url).rstrip("/") + path, content=body, headers=headers)
    try:
        with httpx.Client(timeout=30) as plain:
            resp = plain.send(request)
    except httpx.LocalProtocolError:
        return  # a header the client library itself refuses to send
    if method == "HEAD":  # no body to check
        assert resp.status_code < 500 and not server_log.take(), resp.status_code
    else:
        check(resp, server_log)


# --- body limits, broken and abandoned connections ------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    settings = make_settings(tmp_path_factory.mktemp("small"), max_body_bytes=2048, fetch_timeout_s=1.0)
    with run_server(settings) as live:
        yield live, live.new_key()


@FUZZ
@given(
    size=st.integers(0, 6000),
    chunked=st.booleans(),
    kind=st.sampled_from(["json", "multipart", "edits-json"]),
)
def test_body_limit(
    small_server: tuple[LiveServer, str], server_log: _ErrorLog, size: int, chunked: bool, kind: str
) -> None:
    live, key = small_server
    headers = {"authorization": f"Bearer {key}"}
    if kind == "multipart":
        head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n'
        body = head + b"x" * size + b"\r\n--b--\r\n"
        headers["content-type"] = "multipart/form-data; boundary=b"
    else:
        body = json.dumps({"prompt": "x" * size, "size": "64x64", "quality": "low"}).encode()
        headers["content-type"] = "application/json"
    path = "/v1/images/edits" if kind != "json" else "/v1/images/generations"
    content: Any = iter([body[i : i + 500] for i in range(0, len(body), 500)]) if chunked else body
    resp = httpx.post(live.base_url + path, content=content, headers=headers, timeout=30)
    check(resp, server_log)
    if len(body) > 2048:
        assert resp.status_code == 413 and assert_error_body(resp)["code"] == "request_too_large"
    else:
        assert resp.status_code != 413


@contextlib.contextmanager
def trickling_server() -> Iterator[str]:
    """An image URL whose server promises 100 kB and sends a byte every 0.1 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
                while not stop.wait(0.1):
                    try:
                        conn.sendall(b"\x89")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow.png"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_slow_image_url_times_out(small_server: tuple[LiveServer, str], server_log: _ErrorLog) -> None:
    """fetch_timeout_s bounds the whole download, not each read (here 1 s)."""
    live, key = small_server
    with trickling_server() as url:
        started = time.monotonic()
        resp = httpx.post(live.base_url + "/v1/images/edits", timeout=30,
                          json={"prompt": "x", "images": [{"image_url": url}]},
                          headers={"authorization": f"Bearer {key}"})
        elapsed = time.monotonic() - started
    err = check(resp, server_log)
    assert err is not None and (err["code"], err["param"]) == ("invalid_image_file", "images[0]"), err
    assert elapsed < 5, elapsed


def _port(live: LiveServer) -> int:
    return int(live.base_url.rsplit(":", 1)[1])


def _send_and_hang_up(live: LiveServer, head: str, body: bytes) -> bytes:
    """Send a request head and part of a body, close our side, return what came back."""
    with socket.create_connection(("127.0.0.1", _port(live)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    time.sleep(0.2)  # let the server finish with the request and log, if it logs
    return answer


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=b"])
def test_body_cut_short_is_not_a_server_error(
    server: LiveServer, api_key: str, server_log: _ErrorLog, path: str, framing: str, content_type: str
) -> None:
    """A Content-Length that promises more than comes, or a chunked body that stops."""
    if framing == "content-length":
        head_extra, body = "Content-Length: 1000\r\n", b'{"prompt": "x"'
    else:
        head_extra, body = "Transfer-Encoding: chunked\r\n", b"5\r\n{\"pro\r\n40\r\nmpt\""
    head = (f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: {content_type}\r\n{head_extra}\r\n")
    answer = _send_and_hang_up(server, head, body)
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert not (logged := server_log.take()), logged


@pytest.mark.parametrize("length", ["9" * 5000, "1" * 30, "-1", "+5", "0x10"])
def test_odd_content_length(
    server: LiveServer, api_key: str, server_log: _ErrorLog, length: str
) -> None:
    head = (f"POST /v1/images/generations HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
    answer = _send_and_hang_up(server, head, b'{"prompt": "x"}')
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert not (logged := server_log.take()), logged


def test_client_leaving_a_stream_is_not_a_server_error(
    server: LiveServer, api_key: str, server_log: _ErrorLog
) -> None:
    body = {"prompt": "a cat", "size": "256x256", "quality": "low", "stream": True, "partial_images": 3,
            "n": 4}
    with httpx.stream("POST", server.base_url + "/v1/images/generations", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {api_key}"}) as resp:
        assert resp.status_code == 200
        next(resp.iter_bytes())  # the first event, then hang up
    time.sleep(0.5)
    assert not (logged := server_log.take()), logged


def test_failure_mid_stream_becomes_an_error_event(tmp_path: Path, server_log: _ErrorLog) -> None:
    """A non-gateway error after the stream started: an `error` event, not a cut connection."""
    app = create_app(make_settings(tmp_path))
    with serve_in_thread(app) as base_url:
        flow = app.state.flow
        key = flow.keys.create("t", "internal", credit_micros=10**9)[1]

        def broken_put(*_args: object) -> None:
            raise OSError(28, "No space left on device")

        flow.images.put = broken_put
        body = {"prompt": "a cat", "size": "64x64", "quality": "low", "stream": True}
        resp = httpx.post(base_url + "/v1/images/generations", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})
        time.sleep(0.2)
    assert resp.status_code == 200
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error", events
    error = events[-1]["error"]
    assert error["type"] == "server_error" and error["message"] and "No space" not in error["message"]
    logged = server_log.take()
    assert len(logged) == 1 and "OSError" in logged[0], logged  # the operator sees it, once
