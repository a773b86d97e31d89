"""Hypothesis strategies for the robustness tests: images, JSON values, URLs, request fields.

Successful requests are kept cheap: sizes are small, quality mostly "low".
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from tests.imaging import encode, mask_png, noise


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
    "mask": st.one_of(
        st.just({"image_url": data_url(IMAGES["mask"])}),
        st.builds(lambda url: {"image_url": url}, image_urls),
    ),
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
