"""Decoding and checking uploaded images, masks and data URLs. Pure: bytes in, pixels out.

The real format is sniffed from the bytes; the declared Content-Type only shapes error
messages (SDKs often send raw bytes as application/octet-stream). Sizes are checked
from the header, before any pixel data is decoded, so decompression bombs are
rejected without allocating their canvas.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import warnings
import zlib
from collections.abc import Callable
from typing import IO, TypeVar
from urllib.parse import unquote_to_bytes

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from imagegate.domain import InputImage
from imagegate.errors import InvalidImage, InvalidValue, UnsupportedMimetype
from imagegate.images.encode import MEDIA_TYPES, sniff_format
from imagegate.payload import Payload

_T = TypeVar("_T")

ALLOWED_MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
MAX_INPUT_PIXELS = 50_000_000
MAX_INPUT_EDGE = 16384

# The plugin classes are used directly rather than through Image.open(): the formats are
# already known, and Image.open() would run Pillow's own decompression-bomb check (a
# warning, or an error without the image's size) before ours.
_OPENERS: dict[str, Callable[[IO[bytes]], ImageFile.ImageFile]] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}

# Formats we recognise only to name them in the unsupported-mimetype message.
_OTHER_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF-", "application/pdf"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (4, b"ftypavif", "image/avif"),
    (4, b"ftypheic", "image/heic"),
)

_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes PIL.UnidentifiedImageError and "image file is truncated"
    SyntaxError,  # Pillow's "broken PNG file", "not a JPEG file"...
    ValueError,
    EOFError,
    IndexError,  # with TypeError and struct.error: what Image.open() treats as "not this format"
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


_SUPPORTED_LIST = "'image/jpeg', 'image/png', and 'image/webp'"


def _clean_type(declared_type: str | None) -> str | None:
    if declared_type is None:
        return None
    cleaned = declared_type.split(";", 1)[0].strip().lower()
    return cleaned or None


def _not_supported(
    data: bytes, fmt: str | None, declared: str | None, param: str
) -> InvalidImage | UnsupportedMimetype:
    """The error for bytes that are not png, jpeg or webp."""
    shown = f"image/{fmt}" if fmt is not None else None
    if shown is None:
        shown = next(
            (
                media_type
                for offset, signature, media_type in _OTHER_SIGNATURES
                if data[offset : offset + len(signature)] == signature
            ),
            None,
        )
    if shown is None and declared in ALLOWED_MEDIA_TYPES:
        # Declared as a supported image, but the bytes are not any image we know.
        detail = f"the file is not a valid {declared} file." if data else "the file is empty."
        return InvalidImage(f"Invalid image file '{param}': {detail}", param=param)
    shown = shown or declared or "application/octet-stream"
    return UnsupportedMimetype(
        f"Invalid file '{param}': unsupported mimetype ('{shown}'). "
        f"Supported file formats are {_SUPPORTED_LIST}.",
        param=param,
    )


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size from a WebP header, or None when the header is not understood."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    return None


def _check_size(size: tuple[int, int], *, param: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImage(
            f"Invalid image file '{param}': the image has no pixels ({width}x{height}).",
            param=param,
        )
    if width > MAX_INPUT_EDGE or height > MAX_INPUT_EDGE:
        raise InvalidImage(
            f"Invalid image file '{param}': the image is {width}x{height}; "
            f"each side may be at most {MAX_INPUT_EDGE} px.",
            param=param,
        )
    if width * height > max_pixels:
        raise InvalidImage(
            f"Invalid image file '{param}': the image is {width}x{height} "
            f"({width * height} pixels); at most {max_pixels} pixels are allowed.",
            param=param,
        )


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    if image.mode in _ALPHA_MODES or image.has_transparency_data:
        return image.convert("RGBA")
    if image.mode.startswith("I"):  # 16-bit greyscale PNG: scale, don't clip, to 8 bits
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")


def _run(step: Callable[[], _T], *, param: str, message: str) -> _T:
    """Run a decoding step; any decoder failure (or bomb warning) becomes InvalidImage.

    Other warnings (Pillow's "Corrupt EXIF data" and the like, common in phone photos)
    are silenced: the pixels are still good.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return step()
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"Invalid image file '{param}': {message}", param=param) from exc


# EXIF orientation -> the transpose that displays the image upright (ImageOps.exif_transpose's).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_HEAD = 64  # enough bytes to sniff the format and read a WebP header


def inspect_image(
    source: Payload | bytes,
    *,
    param: str,
    declared_type: str | None = None,
    max_pixels: int = MAX_INPUT_PIXELS,
    filename: str | None = None,
) -> InputImage:
    """Check one uploaded image (png, jpeg or webp, sniffed from the bytes) from its header,
    without decoding its pixels: they are decoded on first use of `InputImage.image`.

    - Not one of the three (text, gif, pdf, empty...): UnsupportedMimetype naming the
      sniffed type (image/gif, application/pdf, image/bmp, image/tiff, image/avif,
      image/heic), else the declared type, else application/octet-stream. When the
      bytes are unrecognised but declared as image/png, image/jpeg or image/webp,
      InvalidImage instead ("... the file is not a valid image/png file.").
    - Wider or taller than MAX_INPUT_EDGE, or more than `max_pixels`: InvalidImage.
    - A header that does not parse: InvalidImage. A file that is truncated or corrupt after
      its header is found out only when the pixels are decoded (decode_image does at once).

    The EXIF orientation (JPEG, WebP, and PNG when its eXIf chunk precedes the pixels) is
    applied. The pixels are RGBA when the image has any alpha (RGBA, LA, PA, or a
    palette/greyscale/RGB image with a transparent colour), else RGB. Only the first frame
    of an animated PNG or WebP is used.
    """
    payload = source if isinstance(source, Payload) else Payload(source)
    head = payload.head(_HEAD)
    declared = _clean_type(declared_type)
    fmt = sniff_format(head)
    if fmt is None or fmt not in _OPENERS:
        raise _not_supported(head, fmt, declared, param)
    media_type = MEDIA_TYPES[fmt]
    opener = _OPENERS[fmt]
    invalid = f"the file is not a valid {media_type} file."
    webp = _webp_header(head) if fmt == "webp" else None
    if webp is not None:
        # Pillow's WebP opener reads the whole file and allocates the canvas: the header suffices.
        size, has_alpha, orientation = webp[0], webp[1], 1
        _check_size(size, param=param, max_pixels=max_pixels)
    else:
        if fmt == "webp" and (header_size := _webp_size(head)) is not None:
            _check_size(header_size, param=param, max_pixels=max_pixels)  # before the canvas exists
        image = _run(lambda: opener(payload.open()), param=param, message=invalid)
        _check_size(image.size, param=param, max_pixels=max_pixels)
        has_alpha = image.mode in _ALPHA_MODES or image.has_transparency_data
        orientation = _run(lambda: _orientation(image, fmt), param=param, message=invalid)
        size = image.size
    if orientation in (5, 6, 7, 8):
        size = (size[1], size[0])

    def decode() -> Image.Image:
        def load() -> Image.Image:
            opened = opener(payload.open())
            opened.load()
            image: Image.Image = opened
            if orientation in _TRANSPOSE:
                image = image.transpose(_TRANSPOSE[orientation])
            return _to_rgb_or_rgba(image)

        return _run(load, param=param, message="the file is truncated or corrupt.")

    return InputImage(payload, media_type, size, has_alpha, decode, filename)


def decode_image(
    source: Payload | bytes,
    *,
    param: str,
    declared_type: str | None = None,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> InputImage:
    """inspect_image, then decode the pixels at once (so a corrupt file fails here)."""
    image = inspect_image(source, param=param, declared_type=declared_type, max_pixels=max_pixels)
    image.image  # noqa: B018 - decodes now
    return image


def _orientation(image: ImageFile.ImageFile, fmt: str) -> int:
    if fmt == "png":  # PngImageFile.getexif() would decode the pixels to find a late eXIf chunk
        raw = image.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = image.getexif()
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) else 1


def _webp_header(head: bytes) -> tuple[tuple[int, int], bool, int] | None:
    """(size, has_alpha) from a simple WebP header; None for one with EXIF or animation, or
    one not understood (Pillow then reads the file)."""
    size = _webp_size(head)
    if size is None:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        flags = head[20]
        if flags & 0x0A:  # EXIF (orientation) or animation: let Pillow read it
            return None
        return size, bool(flags & 0x10), 1
    if chunk == b"VP8L":
        return size, bool((int.from_bytes(head[21:25], "little") >> 28) & 1), 1
    return size, False, 1


def inspect_mask(
    source: Payload | bytes,
    *,
    first: InputImage,
    param: str = "mask",
    declared_type: str | None = None,
    filename: str | None = None,
) -> InputImage:
    """Check an edit mask for `first` from its header; `InputImage.alpha()` gives its alpha.

    Alpha 0 marks the area to edit, 255 the area to keep (OpenAI's convention). The mask
    must be a PNG with an alpha channel (a palette or greyscale PNG with a transparent
    colour counts), the same size as `first`.
    """
    payload = source if isinstance(source, Payload) else Payload(source)
    if sniff_format(payload.head(_HEAD)) in ("jpeg", "webp"):
        raise InvalidImage(
            "Invalid mask image: the mask must be a PNG image with an alpha channel.",
            param=param,
        )
    mask = inspect_image(payload, param=param, declared_type=declared_type, filename=filename)
    if not mask.has_alpha:
        raise InvalidImage(
            "Invalid mask image: the mask must have an alpha channel (RGBA or LA PNG); "
            "fully transparent pixels mark the area to edit.",
            param=param,
        )
    if mask.size != first.size:
        (mw, mh), (iw, ih) = mask.size, first.size
        raise InvalidValue(
            f"Invalid mask image: mask size {mw}x{mh} does not match image size {iw}x{ih}.",
            param=param,
        )
    return mask


def decode_mask(
    source: Payload | bytes,
    *,
    first: InputImage,
    param: str = "mask",
    declared_type: str | None = None,
) -> Image.Image:
    """inspect_mask, then its alpha channel (mode "L"), decoded at once."""
    return inspect_mask(source, first=first, param=param, declared_type=declared_type).alpha()


_DATA_URL_RE = re.compile(r"data:([^,]*),(.*)", re.IGNORECASE | re.DOTALL)
_WHITESPACE = re.compile(rb"\s+")


def parse_data_url(url: str, *, param: str) -> tuple[bytes, str | None]:
    """Split a base64 `data:[<mediatype>][;base64],<data>` URL into (bytes, mediatype).

    The media type is lower-cased without parameters, or None when absent. The
    payload may be standard or URL-safe base64, with or without padding, with
    whitespace or percent-escapes. Not a data URL, or not base64: InvalidValue.
    Undecodable base64 or an empty payload: InvalidImage.
    """
    match = _DATA_URL_RE.fullmatch(url.strip())
    if match is None:
        raise InvalidValue(
            f"Invalid value for '{param}': expected a URL or a base64 data URL "
            "('data:image/png;base64,...').",
            param=param,
        )
    header, payload = match.groups()
    parts = [part.strip() for part in header.split(";")]
    if len(parts) < 2 or parts[-1].lower() != "base64":
        raise InvalidValue(
            f"Invalid value for '{param}': data URLs must be base64-encoded ('data:image/png;base64,...').",
            param=param,
        )
    media_type = parts[0].lower() or None
    raw = unquote_to_bytes(payload) if "%" in payload else payload.encode("ascii", "replace")
    raw = _WHITESPACE.sub(b"", raw).translate(bytes.maketrans(b"-_", b"+/")).rstrip(b"=")
    raw += b"=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(
            f"Invalid image file '{param}': the data URL's base64 payload is invalid.",
            param=param,
        ) from None
    if not data:
        raise InvalidImage(f"Invalid image file '{param}': the data URL's payload is empty.", param=param)
    return data, media_type
