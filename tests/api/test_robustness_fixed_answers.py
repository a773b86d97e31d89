"""Answers that used to lose data or name the wrong field: the exact code and param of each."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.invariant import ErrorLog, check
from tests.api.strategies import IMAGES, data_url

PNG_URL = data_url(IMAGES["png"])
ONE_IMAGE = [("image", ("a.png", IMAGES["png"], "image/png"))]


@pytest.mark.parametrize(
    ("path", "request_kwargs", "code", "param"),
    [
        # The guide's `image` on a generation: errors name `image`, not `images[0]`.
        (
            "/v1/images/generations",
            {"json": {"prompt": "x", "image": "data:image/png;base64,!!!"}},
            "invalid_image_file",
            "image",
        ),
        (
            "/v1/images/generations",
            {"json": {"prompt": "x", "image": [PNG_URL, "data:,"]}},
            "invalid_value",
            "image[1]",
        ),
        (
            "/v1/images/generations",
            {"json": {"prompt": "x", "image": [PNG_URL] * 17}},
            "invalid_value",
            "image",
        ),
        # Both spellings at once: one of them was silently ignored.
        (
            "/v1/images/edits",
            {"json": {"prompt": "x", "images": [{"image_url": PNG_URL}], "image": PNG_URL}},
            "invalid_value",
            "image",
        ),
        # A JSON edit lacks `images`, the field it sends.
        ("/v1/images/edits", {"json": {"prompt": "x", "images": []}}, "missing_required_parameter", "images"),
        ("/v1/images/edits", {"json": {"prompt": "x", "image[]": [PNG_URL]}}, "unknown_parameter", "image[]"),
        # transparency=true implies the background: the error names the field that was sent.
        (
            "/v1/images/generations",
            {"json": {"prompt": "x", "transparency": True, "output_format": "jpeg"}},
            "invalid_value",
            "transparency",
        ),
        # A falsy model of the wrong type was quietly the default model.
        ("/v1/images/generations", {"json": {"prompt": "x", "model": False}}, "invalid_type", "model"),
        ("/v1/images/generations", {"json": {"prompt": "x", "model": []}}, "invalid_type", "model"),
        # A generation's mask is refused by name, not fetched first.
        (
            "/v1/images/generations",
            {"json": {"prompt": "x", "mask": {"image_url": "http://127.0.0.1:1/m"}}},
            "unknown_parameter",
            "mask",
        ),
        (
            "/v1/images/edits",
            {"json": {"prompt": "x", "images": [{"image_url": "http://[::1"}]}},
            "invalid_value",
            "images[0]",
        ),
        (
            "/v1/images/edits",
            {"json": {"prompt": "x", "images": [{"image_url": "http://127.0.0.1:99999/"}]}},
            "invalid_value",
            "images[0]",
        ),
        # Multipart parts that were silently dropped.
        (
            "/v1/images/edits",
            {"data": {"prompt": "x", "mask": PNG_URL}, "files": ONE_IMAGE},
            "invalid_type",
            "mask",
        ),
        (
            "/v1/images/edits",
            {"data": {"prompt": "x", "images": "a"}, "files": ONE_IMAGE},
            "unknown_parameter",
            "images",
        ),
        (
            "/v1/images/edits",
            {"data": {"prompt": "x"}, "files": [*ONE_IMAGE, ("images", ("b.png", IMAGES["png"]))]},
            "unknown_parameter",
            "images",
        ),
        (
            "/v1/images/edits",
            {"data": {"prompt": "x"}, "files": [*ONE_IMAGE, ("n", ("n.txt", b"2"))]},
            "invalid_type",
            "n",
        ),
        (
            "/v1/images/edits",
            {
                "data": {"prompt": "x"},
                "files": [
                    *ONE_IMAGE,
                    ("mask", ("m.png", IMAGES["mask"])),
                    ("mask", ("n.png", IMAGES["mask"])),
                ],
            },
            "invalid_value",
            "mask",
        ),
        # Multipart numbers too long to convert.
        (
            "/v1/images/edits",
            {"data": {"prompt": "x", "n": "9" * 5000}, "files": ONE_IMAGE},
            "invalid_value",
            "n",
        ),
    ],
)
def test_fixed_answers(
    api: httpx.Client, server_log: ErrorLog, path: str, request_kwargs: dict[str, Any], code: str, param: str
) -> None:
    resp = api.post(path, **request_kwargs)
    err = check(resp, server_log)
    assert err is not None and (err["code"], err["param"]) == (code, param), err
