from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagegate.domain import InputImage
from imagegate.errors import InvalidImage, InvalidValue, UnsupportedMimetype
from imagegate.images.decode import (
    ALLOWED_MEDIA_TYPES,
    MAX_INPUT_EDGE,
    MAX_INPUT_PIXELS,
    decode_image,
    decode_mask,
    inspect_image,
    inspect_mask,
    parse_data_url,
)
from imagegate.images.encode import encode_image

SUPPORTED = "Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'."


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png(size: tuple[int, int] = (8, 6)) -> bytes:
    return _save(Image.new("RGB", size), "PNG")


def _patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR width/height of a PNG, with a valid CRC."""
    assert data[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


@st.composite
def images(draw: st.DrawFn, mode: str) -> Image.Image:
    w = draw(st.integers(1, 16))
    h = draw(st.integers(1, 16))
    n = len(mode)
    return Image.frombytes(mode, (w, h), draw(st.binary(min_size=w * h * n, max_size=w * h * n)))


def test_constants() -> None:
    assert ALLOWED_MEDIA_TYPES == ("image/jpeg", "image/png", "image/webp")
    assert MAX_INPUT_PIXELS == 50_000_000
    assert MAX_INPUT_EDGE == 16384


# --- round trips -----------------------------------------------------------------------


@settings(max_examples=30)
@given(images("RGBA"), st.sampled_from(["png", "webp"]))
def test_round_trip_rgba_exact(image: Image.Image, fmt: str) -> None:
    data = encode_image(image, fmt, transparent=True)
    decoded = decode_image(data, param="image")
    assert isinstance(decoded, InputImage)
    assert decoded.media_type == f"image/{fmt}"
    assert b"".join(decoded.source.chunks()) == data
    assert decoded.image.mode == "RGBA"
    assert decoded.image.tobytes() == image.tobytes()


@settings(max_examples=30)
@given(images("RGB"), st.sampled_from(["png", "webp"]))
def test_round_trip_rgb_exact(image: Image.Image, fmt: str) -> None:
    decoded = decode_image(encode_image(image, fmt), param="image")
    assert decoded.image.mode == "RGB"
    assert decoded.image.tobytes() == image.tobytes()


@settings(max_examples=30)
@given(images("RGBA"), st.integers(0, 100))
def test_round_trip_jpeg_keeps_size(image: Image.Image, compression: int) -> None:
    decoded = decode_image(encode_image(image, "jpeg", compression=compression), param="image")
    assert decoded.media_type == "image/jpeg"
    assert decoded.image.mode == "RGB"
    assert decoded.size == image.size


def test_declared_type_does_not_matter_for_real_images() -> None:
    data = _png()
    for declared in (None, "application/octet-stream", "image/jpeg", "IMAGE/PNG; x=y", ""):
        decoded = decode_image(data, param="image[0]", declared_type=declared)
        assert decoded.media_type == "image/png"


# --- modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, mode",
    [
        (Image.new("L", (4, 4), 7), "RGB"),
        (Image.new("1", (4, 4), 1), "RGB"),
        (Image.new("LA", (4, 4), (7, 100)), "RGBA"),
        (Image.new("RGBA", (4, 4), (1, 2, 3, 4)), "RGBA"),
        (Image.new("P", (4, 4), 3), "RGB"),
    ],
)
def test_png_modes(image: Image.Image, mode: str) -> None:
    assert decode_image(_save(image, "PNG"), param="image").image.mode == mode


def test_palette_with_transparency_is_rgba() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    decoded = decode_image(_save(image, "PNG", transparency=0), param="image").image
    assert decoded.mode == "RGBA"
    assert decoded.getchannel("A").getpixel((0, 0)) == 0
    assert decoded.getpixel((1, 1)) == (255, 0, 0, 255)


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    data = _save(Image.new("I;16", (4, 4), 40000), "PNG")
    assert decode_image(data, param="image").image.getpixel((0, 0)) == (156, 156, 156)


def test_cmyk_jpeg() -> None:
    data = _save(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), "JPEG")
    decoded = decode_image(data, param="image").image
    assert decoded.mode == "RGB"
    pixel = decoded.getpixel((2, 2))
    assert isinstance(pixel, tuple)
    r, g, b = pixel
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    data = _save(Image.new("RGB", (20, 10)), "JPEG", exif=exif)
    assert decode_image(data, param="image").size == (10, 20)


def test_corrupt_exif_is_tolerated() -> None:
    # Orientation 6, then a tag whose data lies past the end: Pillow warns while reading.
    ifd = (
        b"II*\x00\x08\x00\x00\x00\x02\x00"
        b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00"
        b"\x0e\x01\x02\x00\x00\x01\x00\x00\x00\x10\x00\x00"
        b"\x00\x00\x00\x00"
    )
    data = _save(Image.new("RGB", (20, 10)), "JPEG", exif=b"Exif\x00\x00" + ifd)
    with pytest.warns(UserWarning):  # the premise: Pillow does warn on this file
        Image.open(io.BytesIO(data)).getexif()
    assert decode_image(data, param="image").size == (10, 20)


# --- rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, declared, shown",
    [
        (b"hello world", "text/plain", "text/plain"),
        (b"hello world", None, "application/octet-stream"),
        (b"", None, "application/octet-stream"),
        (b"", "application/octet-stream", "application/octet-stream"),
        (b"%PDF-1.7 ...", "application/octet-stream", "application/pdf"),
        (b"%PDF-1.7 ...", "image/png", "application/pdf"),
        (b"BM\x00\x00", None, "image/bmp"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00", "image/png", "image/gif"),
    ],
)
def test_unsupported_mimetype(data: bytes, declared: str | None, shown: str) -> None:
    with pytest.raises(UnsupportedMimetype) as info:
        decode_image(data, param="image[0]", declared_type=declared)
    assert info.value.param == "image[0]"
    assert info.value.code == "unsupported_file_mimetype"
    assert info.value.message == (f"Invalid file 'image[0]': unsupported mimetype ('{shown}'). {SUPPORTED}")


def test_real_gif_is_unsupported() -> None:
    with pytest.raises(UnsupportedMimetype, match="image/gif"):
        decode_image(_save(Image.new("RGB", (4, 4)), "GIF"), param="image")


@pytest.mark.parametrize("data", [b"", b"not an image"])
def test_declared_image_but_not_an_image(data: bytes) -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(data, param="image", declared_type="image/png")
    assert info.value.param == "image"
    assert info.value.code == "invalid_image_file"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated(fmt: str) -> None:
    data = _save(Image.effect_noise((64, 64), 50).convert("RGB"), fmt)
    with pytest.raises(InvalidImage) as info:
        decode_image(data[: len(data) // 2], param="image")
    assert info.value.param == "image"
    assert "Invalid image file 'image'" in info.value.message


def test_truncated_png_message() -> None:
    data = _save(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(InvalidImage) as info:
        decode_image(data[: len(data) // 2], param="image")
    assert info.value.message == "Invalid image file 'image': the file is truncated or corrupt."


@pytest.mark.parametrize("cut", [8, 20, 40])
def test_header_only(cut: int) -> None:
    with pytest.raises(InvalidImage):
        decode_image(_png()[:cut], param="image")


def test_corrupt_crc() -> None:
    data = bytearray(_png())
    data[30] ^= 0xFF  # inside the IHDR CRC
    with pytest.raises(InvalidImage):
        decode_image(bytes(data), param="image")


def test_png_bomb_rejected_before_allocating() -> None:
    bomb = _patch_png_size(_png((1, 1)), 100_000, 100_000)
    start = time.perf_counter()
    with pytest.raises(InvalidImage) as info:
        decode_image(bomb, param="image")
    assert time.perf_counter() - start < 0.5
    assert info.value.param == "image"
    assert "100000x100000" in info.value.message


@pytest.mark.parametrize("size", [(9000, 9000), (12000, 12000)])  # over our limit; over Pillow's
def test_png_over_pixel_limit(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidImage, match="at most 50000000 pixels"):
        decode_image(_patch_png_size(_png((1, 1)), *size), param="image")


def test_png_over_edge_limit() -> None:
    with pytest.raises(InvalidImage, match="at most 16384 px"):
        decode_image(_patch_png_size(_png((1, 1)), 20_000, 2), param="image")


def test_max_pixels_argument() -> None:
    data = _png((100, 100))
    assert decode_image(data, param="image", max_pixels=10_000).size == (100, 100)
    with pytest.raises(InvalidImage, match="10000 pixels"):
        decode_image(data, param="image", max_pixels=9_999)


def test_webp_bomb_rejected_from_header() -> None:
    data = bytearray(encode_image(Image.new("RGB", (2, 2)), "webp"))
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    bits = int.from_bytes(data[21:25], "little")
    bits = (bits & ~((1 << 28) - 1)) | 0x3FFF | (0x3FFF << 14)  # 16384x16384
    data[21:25] = bits.to_bytes(4, "little")
    start = time.perf_counter()
    with pytest.raises(InvalidImage, match="16384x16384"):
        decode_image(bytes(data), param="image")
    assert time.perf_counter() - start < 0.5


# --- masks ----------------------------------------------------------------------------------


def _first(size: tuple[int, int] = (16, 8)) -> InputImage:
    return decode_image(_png(size), param="image")


def test_mask_alpha_channel() -> None:
    mask = Image.new("RGBA", (16, 8), (0, 0, 0, 255))
    mask.putpixel((3, 2), (0, 0, 0, 0))
    alpha = decode_mask(_save(mask, "PNG"), first=_first())
    assert alpha.mode == "L" and alpha.size == (16, 8)
    assert alpha.getpixel((3, 2)) == 0 and alpha.getpixel((0, 0)) == 255


def test_la_mask() -> None:
    alpha = decode_mask(_save(Image.new("LA", (16, 8), (0, 10)), "PNG"), first=_first())
    assert alpha.getpixel((5, 5)) == 10


def test_mask_without_alpha() -> None:
    with pytest.raises(InvalidImage) as info:
        decode_mask(_png((16, 8)), first=_first())
    assert info.value.param == "mask"
    assert info.value.message == (
        "Invalid mask image: the mask must have an alpha channel (RGBA or LA PNG); "
        "fully transparent pixels mark the area to edit."
    )


def test_mask_wrong_size() -> None:
    mask = _save(Image.new("RGBA", (512, 512)), "PNG")
    with pytest.raises(InvalidValue) as info:
        decode_mask(mask, first=_first((1024, 1024)))
    assert info.value.param == "mask"
    assert info.value.code == "invalid_value"
    assert info.value.message == (
        "Invalid mask image: mask size 512x512 does not match image size 1024x1024."
    )


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_mask_must_be_png(fmt: str) -> None:
    mode = "RGB" if fmt == "JPEG" else "RGBA"
    with pytest.raises(InvalidImage, match="PNG") as info:
        decode_mask(_save(Image.new(mode, (16, 8)), fmt), first=_first())
    assert info.value.param == "mask"


def test_mask_gif_and_text() -> None:
    with pytest.raises(UnsupportedMimetype) as info:
        decode_mask(_save(Image.new("RGB", (16, 8)), "GIF"), first=_first())
    assert info.value.param == "mask"
    with pytest.raises(UnsupportedMimetype):
        decode_mask(b"text", first=_first(), declared_type="text/plain")


def test_truncated_mask() -> None:
    data = _save(Image.effect_noise((16, 8), 50).convert("RGBA"), "PNG")
    with pytest.raises(InvalidImage) as info:
        decode_mask(data[: len(data) // 2], first=_first())
    assert info.value.param == "mask"


# --- data URLs ------------------------------------------------------------------------------


def test_data_url() -> None:
    png = _png()
    b64 = base64.b64encode(png).decode()
    assert parse_data_url(f"data:image/png;base64,{b64}", param="p") == (png, "image/png")
    assert parse_data_url(f"DATA:Image/PNG;name=a.png;base64,{b64}", param="p")[1] == "image/png"
    assert parse_data_url(f"data:;base64,{b64}", param="p") == (png, None)
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    assert parse_data_url(f"data:image/png;base64,{wrapped}", param="p")[0] == png
    unpadded = base64.urlsafe_b64encode(png).decode().rstrip("=")
    assert parse_data_url(f"data:image/png;base64,{unpadded}", param="p")[0] == png
    escaped = b64.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert parse_data_url(f"data:image/png;base64,{escaped}", param="p")[0] == png


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "data:image/png,rawbytes",
        "data:base64,aGVsbG8=",
        "data:image/png;base64",
        "",
    ],
)
def test_data_url_invalid_value(url: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_data_url(url, param="images[0].image_url")
    assert info.value.param == "images[0].image_url"


@pytest.mark.parametrize("payload", ["!!!!", "abcde", "", "ab\u00e9c", "YWJj$ZGVm"])
def test_data_url_bad_base64(payload: str) -> None:
    with pytest.raises(InvalidImage) as info:
        parse_data_url(f"data:image/png;base64,{payload}", param="mask")
    assert info.value.param == "mask"


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=300), st.booleans())
def test_data_url_round_trip(data: bytes, urlsafe: bool) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    url = "data:application/octet-stream;base64," + encode(data).decode()
    assert parse_data_url(url, param="p") == (data, "application/octet-stream")


@settings(max_examples=200)
@given(st.text())
def test_data_url_arbitrary_text(text: str) -> None:
    try:
        parse_data_url("data:image/png;base64," + text, param="p")
    except (InvalidImage, InvalidValue) as exc:
        assert exc.param == "p"


# --- header-only inspection (relayed uploads are never decoded) ---------------------------


def test_inspect_reads_the_header_and_decodes_the_pixels_on_first_use() -> None:
    data = _save(Image.effect_noise((64, 48), 50).convert("RGB"), "PNG")
    cut = data[: len(data) // 2]
    inspected = inspect_image(cut, param="image[1]")  # a truncated file passes the header check
    assert (inspected.size, inspected.media_type, inspected.has_alpha) == ((64, 48), "image/png", False)
    assert not inspected.decoded
    with pytest.raises(InvalidImage) as info:
        inspected.image  # noqa: B018
    assert (info.value.param, info.value.message) == (
        "image[1]",
        "Invalid image file 'image[1]': the file is truncated or corrupt.",
    )
    whole = inspect_image(data, param="image")
    assert whole.image.size == (64, 48) and whole.decoded


@pytest.mark.parametrize(
    ("mode", "options", "alpha"),
    [
        ("RGB", {}, False),
        ("RGBA", {}, True),
        ("LA", {}, True),
        ("P", {"transparency": 0}, True),
        ("L", {}, False),
    ],
)
def test_inspect_tells_alpha_from_the_png_header_as_decoding_does(
    mode: str, options: dict[str, object], alpha: bool
) -> None:
    data = _save(Image.new(mode, (5, 4)), "PNG", **options)
    assert inspect_image(data, param="image").has_alpha is alpha
    assert (decode_image(data, param="image").image.mode == "RGBA") is alpha


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("RGB", {"lossless": True}),
        ("RGBA", {"lossless": True}),
        ("RGB", {"quality": 80}),
        ("RGBA", {"quality": 80}),
    ],
)
def test_inspect_reads_webp_size_and_alpha_from_the_header(mode: str, options: dict[str, object]) -> None:
    image = Image.new(mode, (30, 20), (10, 20, 30, 128)[: len(mode)])
    data = _save(image, "WEBP", **options)
    inspected = inspect_image(data, param="image")
    assert inspected.size == (30, 20) and inspected.has_alpha is (mode == "RGBA")
    assert inspected.image.mode == mode


def test_inspect_applies_the_exif_orientation_without_decoding() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = _save(Image.new("RGB", (20, 10)), "JPEG", exif=exif)
    inspected = inspect_image(data, param="image")
    assert inspected.size == (10, 20) and not inspected.decoded
    assert inspected.image.size == (10, 20)


def test_inspect_mask_checks_alpha_and_size_from_headers() -> None:
    first = inspect_image(_png((16, 8)), param="image")
    mask = inspect_mask(_save(Image.new("RGBA", (16, 8), (0, 0, 0, 0)), "PNG"), first=first)
    assert not mask.decoded and mask.alpha().getextrema() == (0, 0)
    with pytest.raises(InvalidValue):
        inspect_mask(_save(Image.new("RGBA", (8, 8)), "PNG"), first=first)
    with pytest.raises(InvalidImage):
        inspect_mask(_png((16, 8)), first=first)
