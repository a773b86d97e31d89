"""Multipart edits: generated form fields and file parts, and hand-made multipart bodies.

The invariant is in `invariant.py`: below 500, OpenAI's error body, nothing logged as an error.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from imagegate.flow.validate import EDIT_FIELDS
from tests.api.invariant import FUZZ, ErrorLog, check, check_stream, post_raw
from tests.api.strategies import GOOD, IMAGES, VALID_IMAGES, digit_strings, image_bytes

TEXT_FIELDS = sorted(EDIT_FIELDS - {"image", "image[]", "mask", "images"})
FILE_FIELDS = ["image", "image", "image[]", "image[0]", "image[3]", "mask", "images", "file", "prompt"]
PART_TYPES = [
    "image/png",
    "image/jpeg",
    "image/webp",
    "application/octet-stream",
    "text/plain",
    "image/gif",
    "IMAGE/PNG; charset=binary",
    "",
]
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
        st.tuples(
            st.sampled_from(["a.png", "photo", "x.jpg"]),
            st.sampled_from(VALID_IMAGES),
            st.sampled_from(PART_TYPES),
        ),
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
@example(
    parts=(
        {"prompt": "x", "mask": "data:image/png;base64,AAAA"},
        [("image", ("a.png", IMAGES["png"], "image/png"))],
    )
)
@example(
    parts=(
        {"prompt": "x", "size": "64x64"},
        [("image", ("a.png", IMAGES["png"], "image/png")), ("images", ("b.png", IMAGES["png"], ""))],
    )
)
@example(
    parts=(
        {"prompt": "x", "size": "64x64"},
        [
            ("image", ("a.png", IMAGES["png"], "image/png")),
            ("mask", ("m.png", IMAGES["mask"], "image/png")),
            ("mask", ("n.png", IMAGES["png"], "image/png")),
        ],
    )
)
def test_multipart_edits(
    api: httpx.Client, server_log: ErrorLog, parts: tuple[dict[str, Any], list[tuple[str, Any]]]
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
        header = draw(
            st.sampled_from(
                [
                    f'Content-Disposition: form-data; name="{name}"',
                    f'Content-Disposition: form-data; name="{name}"; filename="a.png"\r\n'
                    "Content-Type: image/png",
                    f"Content-Disposition: form-data; name={name}",
                    "Content-Disposition: attachment",
                    "X-Nothing: 1",
                    "",
                ]
            )
        )
        value = draw(st.sampled_from([b"a cat", IMAGES["png"], b"\xff\xfe"]) | st.binary(max_size=30))
        parts.append(f"--{boundary}\r\n{header}\r\n\r\n".encode() + value + b"\r\n")
    body = b"".join(parts) + draw(st.sampled_from([f"--{boundary}--\r\n".encode(), b"", b"--"]))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                f'multipart/form-data; boundary="{boundary}"',
                "multipart/form-data",
                "multipart/form-data; boundary=",
                f"Multipart/Form-Data; boundary={boundary}",
                f"multipart/form-data;boundary={boundary};charset=utf-16",
                "multipart/form-dataX",
            ]
        )
    )
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
def test_raw_multipart(api: httpx.Client, server_log: ErrorLog, request: tuple[str, bytes]) -> None:
    content_type, body = request
    try:
        resp = api.post(
            "/v1/images/edits", content=body, headers={"content-type": content_type.encode("utf-8")}
        )  # type: ignore[dict-item]
    except httpx.LocalProtocolError:
        return  # a header the client library itself refuses to send
    check(resp, server_log)


def test_multipart_cut_short_is_refused(api: httpx.Client, server_log: ErrorLog) -> None:
    """Starlette returns the parts before the cut and drops the rest without a word."""
    resp = post_raw(api, "/v1/images/edits", CUT_SHORT, "multipart/form-data; boundary=b")
    err = check(resp, server_log)
    assert err is not None and "closing boundary" in err["message"], err
