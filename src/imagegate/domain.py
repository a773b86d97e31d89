"""Frozen, validated values that travel down the request path. No I/O here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from PIL import Image

from imagegate.images.tokens import Usage
from imagegate.payload import Payload

Quality = Literal["low", "medium", "high"]
Background = Literal["transparent", "opaque"]
OutputFormat = Literal["png", "jpeg", "webp"]
Moderation = Literal["auto", "low"]
Fidelity = Literal["low", "high"]
Effort = Literal["low", "medium", "high"]
JobKind = Literal["generation", "edit"]


class InputImage:
    """A checked upload or reference image: its bytes as received, the facts its header gives,
    and its pixels, decoded on first use. A relayed edit never decodes them: the upstream gets
    the bytes; a local engine reads `image` (mode RGB or RGBA, EXIF orientation applied)."""

    __slots__ = ("_decode", "_pixels", "filename", "has_alpha", "media_type", "size", "source")

    def __init__(
        self,
        source: Payload,
        media_type: str,
        size: tuple[int, int],
        has_alpha: bool,
        decode: Callable[[], Image.Image],
        filename: str | None = None,
    ) -> None:
        self.source = source  # for hashing and relaying
        self.media_type = media_type  # image/png, image/jpeg or image/webp
        self.size = size  # (width, height) as displayed, after the EXIF orientation
        self.has_alpha = has_alpha
        self.filename = filename  # the client's, relayed as it came
        self._decode = decode
        self._pixels: Image.Image | None = None

    @property
    def image(self) -> Image.Image:
        """The pixels (decoded now, once). A corrupt or truncated file raises InvalidImage."""
        if self._pixels is None:
            self._pixels = self._decode()
        return self._pixels

    @property
    def decoded(self) -> bool:
        return self._pixels is not None

    def release(self) -> None:
        """Drop the decoded pixels (the engine is done with them); `image` decodes again if asked."""
        self._pixels = None

    def alpha(self) -> Image.Image:
        """The alpha channel (mode "L"); for a mask: 0 = edit here, 255 = keep."""
        return self.image.getchannel("A") if self.image.mode == "RGBA" else Image.new("L", self.size, 255)


@dataclass(frozen=True, slots=True)
class ImageJob:
    """What an engine is asked to make: every value already resolved (never 'auto')."""

    model: str
    prompt: str
    kind: JobKind = "generation"
    n: int = 1
    width: int = 1024
    height: int = 1024
    quality: Quality = "medium"
    background: Background = "opaque"
    output_format: OutputFormat = "png"
    output_compression: int = 100
    moderation: Moderation = "auto"
    images: tuple[InputImage, ...] = ()  # reference images; the first is the one edited
    mask: InputImage | None = None  # a PNG with alpha, the size of images[0]; see InputImage.alpha
    input_fidelity: Fidelity = "low"
    seed: int = 0
    partial_images: int = 0
    stream: bool = False
    effort: Effort | None = None  # engine knob (placeholder: detail level; diffusers: steps)
    user: str | None = None
    # For relaying engines: the OpenAI parameters as the client sent them (aliases renamed,
    # multipart strings coerced, imagegate-only fields removed), and whether the edit came as
    # JSON (image URLs) rather than files.
    passthrough: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    relay_json: bool = False

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def inputs(self) -> tuple[InputImage, ...]:
        """The reference images, then the mask: every image the client sent."""
        return (*self.images, self.mask) if self.mask is not None else self.images


@dataclass(frozen=True, slots=True)
class PartialImage:
    """A progressively refined preview of image `index` (streaming only), as pixels
    (local engines) or already encoded in the job's output format (upstreams)."""

    index: int
    partial_index: int
    image: Image.Image | None = None
    encoded: bytes | None = None
    b64: str | None = None  # `encoded` as base64, when it arrived so (see FinalImage)
    adapted: tuple[str, ...] = ()  # how the request was adapted to the provider (engines/adapt.py)


@dataclass(frozen=True, slots=True)
class FinalImage:
    """Image `index` of the job, as pixels (local engines) or encoded bytes (upstreams)."""

    index: int
    image: Image.Image | None = None
    encoded: bytes | None = None
    media_type: str | None = None
    usage: Usage | None = None  # the engine's own usage for this image (an upstream's numbers)
    echo: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # values it echoed
    # `encoded` as standard base64 text, when it arrived so (an upstream's b64_json): the response
    # reuses it rather than encoding `encoded` again (a 1024x1024 PNG: 1.5 MB of text).
    b64: str | None = None
    adapted: tuple[str, ...] = ()  # how the request was adapted to the provider (engines/adapt.py)


EngineEvent = PartialImage | FinalImage
