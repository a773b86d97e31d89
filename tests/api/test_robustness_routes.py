"""The other routes (signed files, models) and odd headers on every route.

The invariant is in `invariant.py`: below 500, OpenAI's error body, nothing logged as an error.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from tests.api.invariant import FUZZ, ErrorLog, check
from tests.api.strategies import digit_strings

HEX = "0123456789abcdef"


@FUZZ
@given(
    name=st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda h, ext: h + ext,
            st.text(HEX, min_size=64, max_size=64),
            st.sampled_from([".png", ".jpeg", ".webp", ".gif", ".png\n", ""]),
        ),
    ),
    expires=st.one_of(
        st.text(max_size=12),
        st.integers(-5, 2**70).map(str),
        digit_strings,
        st.just(str(int(time.time()) + 3600)),
    ),
    signature=st.one_of(st.text(max_size=70), st.text(HEX, min_size=64, max_size=64)),
    drop=st.sampled_from([None, "expires", "signature"]),
)
@example(name="a" * 64 + ".png", expires="²", signature="x", drop=None)
@example(name="a" * 64 + ".png", expires="9" * 5000, signature="x", drop=None)
@example(name="a" * 64 + ".png", expires="9" * 20, signature="é" * 64, drop=None)
def test_signed_file_route(
    api: httpx.Client, server_log: ErrorLog, name: str, expires: str, signature: str, drop: str | None
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
def test_model_ids(api: httpx.Client, server_log: ErrorLog, model_id: str, slashes: bool) -> None:
    resp = api.get("/v1/models/" + quote(model_id, safe="/" if slashes else ""))
    check(resp, server_log)


latin1 = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
)


@st.composite
def header_sets(draw: st.DrawFn, key: str) -> dict[str, bytes]:
    headers: dict[str, bytes] = {}
    auth = draw(
        st.one_of(
            st.none(),
            st.sampled_from(
                [
                    f"Bearer {key}",
                    f"bearer {key}",
                    f"Bearer  {key} ",
                    "Bearer",
                    "Bearer ",
                    f"Basic {key}",
                    key,
                    f"Bearer {key}x",
                    "Bearer sk-ig-\u00e9\u00ff",
                ]
            ),
            latin1,
        )
    )
    if auth is not None:
        headers["authorization"] = auth.encode("latin-1")
    content_type = draw(
        st.one_of(
            st.none(),
            st.sampled_from(
                [
                    "application/json",
                    "application/json; charset=utf-8",
                    "application/JSON",
                    "multipart/form-data",
                    "multipart/form-data; boundary=",
                    "multipart/form-data; boundary=zz",
                    "multipart/mixed; boundary=zz",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "",
                ]
            ),
            latin1,
        )
    )
    if content_type is not None:
        headers["content-type"] = content_type.encode("latin-1")
    if draw(st.integers(0, 3)) == 0:
        idempotency_key = draw(st.sampled_from(["k", "x" * 5000, " ", "é"]) | latin1)
        headers["idempotency-key"] = idempotency_key.encode("latin-1")
    if draw(st.integers(0, 4)) == 0:
        headers["host"] = draw(
            st.sampled_from(["[::1", "a b", "\u00e9", "x:99999", ":", "[", "h:1:2"]) | latin1
        ).encode("latin-1")
    return headers


REQUEST_BODIES = [
    b"",
    json.dumps({"prompt": "a cat", "size": "64x64", "quality": "low"}).encode(),
    b'--zz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n--zz--\r\n',
    b"prompt=a+cat",
    b"\xff\x00",
]


@FUZZ
@given(
    data=st.data(),
    method=st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]),
    path=st.sampled_from(
        [
            "/v1/images/generations",
            "/v1/images/edits",
            "/v1/models",
            "/v1/models/gpt-image-1",
            "/v1/images/files/x.png",
            "/healthz",
            "/v1/nothing",
            "/v1/images/edits/",
            "/openapi.json",
            "/docs",
            "/docs/assets/swagger-ui.css",
            "/docs/assets/nothing.js",
        ]
    ),
    body=st.sampled_from(REQUEST_BODIES),
)
def test_headers(
    api: httpx.Client,
    api_key: str,
    server_log: ErrorLog,
    data: st.DataObject,
    method: str,
    path: str,
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


@FUZZ
@given(
    job_id=st.one_of(
        st.text(min_size=1, max_size=60), st.text(HEX, min_size=32, max_size=32).map("imgjob_".__add__)
    ),
    cancel=st.booleans(),
)
@example(job_id="imgjob_" + "0" * 32, cancel=True)
@example(job_id="x" * 5000, cancel=False)
@example(job_id="模型\u0000", cancel=True)
def test_job_ids(api: httpx.Client, server_log: ErrorLog, job_id: str, cancel: bool) -> None:
    path = "/v1/images/jobs/" + quote(job_id, safe="")
    resp = api.post(path + "/cancel") if cancel else api.get(path)
    check(resp, server_log)
    assert resp.status_code in (307, 404, 405), resp.text  # 307: a "/" at the end


@FUZZ
@given(
    route=st.sampled_from(["/v1/images/jobs", "/v1/images/history"]),
    params=st.dictionaries(
        st.sampled_from(["limit", "after", "before", "since", "until", "model"]),
        st.one_of(st.text(max_size=30), st.integers(-(2**70), 2**70).map(str), digit_strings),
        max_size=4,
    ),
)
@example(route="/v1/images/history", params={"before": "hist_99999999999999999999"})
@example(route="/v1/images/history", params={"since": "nan", "until": "inf"})
@example(route="/v1/images/jobs", params={"limit": "0", "after": "\u0000"})
def test_paged_lists(api: httpx.Client, server_log: ErrorLog, route: str, params: dict[str, str]) -> None:
    resp = api.get(route, params=params)
    check(resp, server_log)
    assert resp.status_code in (200, 400), resp.text
