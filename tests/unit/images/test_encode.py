from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagegate.images.encode import MEDIA_TYPES, encode_image, sniff_format

CHANNELS = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}


@st.composite
def images(draw: st.DrawFn, mode: str) -> Image.Image:
    w = draw(st.integers(1, 16))
    h = draw(st.integers(1, 16))
    size = w * h * CHANNELS[mode]
    return Image.frombytes(mode, (w, h), draw(st.binary(min_size=size, max_size=size)))


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_media_types() -> None:
    assert MEDIA_TYPES == {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@settings(max_examples=40)
@given(images("RGBA"))
def test_transparent_png_is_exact(image: Image.Image) -> None:
    out = _open(encode_image(image, "png", transparent=True))
    assert out.format == "PNG" and out.mode == "RGBA"
    assert out.tobytes() == image.tobytes()


@settings(max_examples=40)
@given(images("RGBA"))
def test_transparent_lossless_webp_is_exact(image: Image.Image) -> None:
    out = _open(encode_image(image, "webp", transparent=True))
    assert out.format == "WEBP" and out.mode == "RGBA"
    assert out.tobytes() == image.tobytes()


@settings(max_examples=40)
@given(images("RGB"), st.sampled_from(["png", "webp"]))
def test_opaque_lossless_is_exact(image: Image.Image, fmt: str) -> None:
    out = _open(encode_image(image, fmt))
    assert out.mode == "RGB"
    assert out.tobytes() == image.tobytes()


@settings(max_examples=40)
@given(images("RGBA"), st.sampled_from(["png", "jpeg", "webp"]), st.integers(0, 100))
def test_opaque_output_has_no_alpha(image: Image.Image, fmt: str, compression: int) -> None:
    data = encode_image(image, fmt, compression=compression)
    out = _open(data)
    assert sniff_format(data) == fmt
    assert out.mode == "RGB"
    assert out.size == image.size


def test_flattening_is_onto_white() -> None:
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    image.putpixel((0, 0), (10, 20, 30, 255))
    for fmt in ("png", "webp"):
        out = _open(encode_image(image, fmt))
        assert out.getpixel((3, 3)) == (255, 255, 255)
        assert out.getpixel((0, 0)) == (10, 20, 30)


def test_half_transparent_is_blended() -> None:
    image = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    pixel = _open(encode_image(image, "png")).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    r, g, b = pixel
    assert r == g == b and 125 <= r <= 129


def test_transparent_from_rgb_is_opaque_rgba() -> None:
    out = _open(encode_image(Image.new("RGB", (3, 3), (1, 2, 3)), "png", transparent=True))
    assert out.mode == "RGBA" and out.getpixel((1, 1)) == (1, 2, 3, 255)


def test_jpeg_quality_mapping() -> None:
    image = Image.effect_noise((64, 64), 50).convert("RGB")
    assert encode_image(image, "jpeg") == encode_image(image, "jpeg", compression=95)
    assert encode_image(image, "jpeg", compression=0) == encode_image(image, "jpeg", compression=1)
    assert len(encode_image(image, "jpeg", compression=20)) < len(encode_image(image, "jpeg"))
    # transparent is ignored for jpeg
    assert encode_image(image, "jpeg", transparent=True) == encode_image(image, "jpeg")


def test_lossy_webp() -> None:
    image = Image.effect_noise((64, 64), 50).convert("RGB")
    lossy = encode_image(image, "webp", compression=50)
    assert len(lossy) < len(encode_image(image, "webp"))
    assert _open(lossy).size == (64, 64)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("compression", [100, 60])
def test_deterministic_and_metadata_free(fmt: str, compression: int) -> None:
    image = Image.effect_noise((32, 32), 40).convert("RGB")
    tagged = image.copy()
    tagged.info.update({"dpi": (300, 300), "exif": b"Exif\x00\x00junk", "icc_profile": b"x"})
    first = encode_image(image, fmt, compression=compression)
    assert encode_image(image, fmt, compression=compression) == first
    assert encode_image(tagged, fmt, compression=compression) == first
    assert tagged.info["dpi"] == (300, 300)  # the caller's image is not touched
    out = Image.open(io.BytesIO(first))
    assert "exif" not in out.info and "icc_profile" not in out.info
    assert not out.getexif()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "RGB", "RGBA"])
def test_any_mode(mode: str) -> None:
    image = Image.new(mode, (5, 7))
    for fmt in ("png", "jpeg", "webp"):
        assert _open(encode_image(image, fmt)).size == (5, 7)


def test_bad_arguments() -> None:
    image = Image.new("RGB", (2, 2))
    with pytest.raises(ValueError):
        encode_image(image, "gif")
    with pytest.raises(ValueError):
        encode_image(image, "jpeg", compression=101)


@pytest.mark.parametrize(
    "data, fmt",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a\x01\x00", "gif"),
        (b"GIF87a", "gif"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"%PDF-1.7", None),
        (b"hello", None),
        (b"", None),
    ],
)
def test_sniff_format(data: bytes, fmt: str | None) -> None:
    assert sniff_format(data) == fmt
