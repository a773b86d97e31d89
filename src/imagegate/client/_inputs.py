"""Reference images and masks as the user hands them over: paths, bytes, files, PIL images, URLs.

`load_input` turns each into an `ImageFile` (bytes, a file name and a media type) or an
`ImageURL` (http(s) or data URL). Pillow is imported only when a PIL image is given.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Union

# Path, str (a path or a URL), raw bytes, a binary file object, or a PIL.Image.Image.
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, IO[bytes], Any]

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_EXTENSIONS = MappingProxyType(
    {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
)
URL_PREFIXES = ("http://", "https://", "data:")


@dataclass(frozen=True, slots=True)
class ImageFile:
    """Image bytes to upload as a multipart file part."""

    data: bytes
    filename: str
    content_type: str

    def data_url(self) -> str:
        """The bytes as a base64 data URL (for JSON edits)."""
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class ImageURL:
    """An image the server fetches itself (http(s)) or decodes (data URL)."""

    url: str


ImageRef = ImageFile | ImageURL


def sniff_type(data: bytes, filename: str = "") -> str:
    """The media type of image bytes, from their signature, else from the file name."""
    for signature, media in _SIGNATURES:
        if data.startswith(signature):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return _EXTENSIONS.get(ext, "application/octet-stream")


def _from_bytes(data: bytes, filename: str) -> ImageFile:
    media = sniff_type(data, filename)
    if "." not in filename and media.startswith("image/"):
        filename = f"{filename}.{media.split('/')[1].replace('jpeg', 'jpg')}"
    return ImageFile(data, filename, media)


def _is_pil_image(value: object) -> bool:
    return hasattr(value, "save") and hasattr(value, "mode") and hasattr(value, "size")


def load_input(value: ImageInput, default_name: str = "image") -> ImageRef:
    """One reference image as an ImageFile or ImageURL; raises TypeError/OSError when unusable."""
    if isinstance(value, ImageFile | ImageURL):
        return value
    if isinstance(value, str) and value.startswith(URL_PREFIXES):
        return ImageURL(value)
    if isinstance(value, str | os.PathLike):
        path = Path(value)
        return _from_bytes(path.read_bytes(), path.name)
    if isinstance(value, bytes | bytearray | memoryview):
        return _from_bytes(bytes(value), default_name)
    if _is_pil_image(value):
        buffer = io.BytesIO()
        image: Any = value  # a PIL image (checked by name: the SDK does not need Pillow)
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA")
        image.save(buffer, format="PNG")
        return ImageFile(buffer.getvalue(), f"{default_name}.png", "image/png")
    if hasattr(value, "read"):
        data = value.read()
        if isinstance(data, str):
            raise TypeError("image file objects must be opened in binary mode ('rb')")
        name = os.path.basename(str(getattr(value, "name", "") or default_name))
        return _from_bytes(data, name)
    raise TypeError(
        f"unsupported image input {type(value).__name__}: pass a path, bytes, a binary file, "
        "a PIL image or an http(s)/data URL"
    )


def load_inputs(values: ImageInput | list[ImageInput] | tuple[ImageInput, ...]) -> list[ImageRef]:
    """A list of reference images (a single input is a list of one)."""
    items = list(values) if isinstance(values, list | tuple) else [values]
    if not items:
        raise ValueError("edit needs at least one image")
    return [load_input(item, f"image-{i}") for i, item in enumerate(items)]


def cache_identity(ref: ImageRef) -> str:
    """What a reference image contributes to a cache key: its bytes' digest, or its URL."""
    if isinstance(ref, ImageFile):
        return "sha256:" + hashlib.sha256(ref.data).hexdigest()
    return "url:" + ref.url
