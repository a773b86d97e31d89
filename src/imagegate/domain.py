"""Frozen, validated values that travel down the request path. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from PIL import Image

Quality = Literal["low", "medium", "high"]
Background = Literal["transparent", "opaque"]
OutputFormat = Literal["png", "jpeg", "webp"]
Moderation = Literal["auto", "low"]
Fidelity = Literal["low", "high"]
Effort = Literal["low", "medium", "high"]
JobKind = Literal["generation", "edit"]


@dataclass(frozen=True, slots=True)
class InputImage:
    """A decoded, checked upload or reference image."""

    image: Image.Image  # fully loaded, mode RGB or RGBA
    data: bytes  # the bytes as received (for hashing and relaying)
    media_type: str  # image/png, image/jpeg or image/webp

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


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
    mask: Image.Image | None = None  # mode "L": 0 = edit here, 255 = keep; size of images[0]
    input_fidelity: Fidelity = "low"
    seed: int = 0
    partial_images: int = 0
    stream: bool = False
    effort: Effort | None = None  # engine knob (placeholder: detail level; diffusers: steps)
    user: str | None = None
    # For relaying engines: the OpenAI parameters as the client sent them (aliases renamed,
    # multipart strings coerced, imagegate-only fields removed), the mask's PNG bytes, and
    # whether the edit came as JSON (image URLs) rather than files.
    passthrough: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    mask_data: bytes | None = None
    relay_json: bool = False

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True, slots=True)
class PartialImage:
    """A progressively refined preview of image `index` (streaming only), as pixels
    (local engines) or already encoded in the job's output format (upstreams)."""

    index: int
    partial_index: int
    image: Image.Image | None = None
    encoded: bytes | None = None
    b64: str | None = None  # `encoded` as base64, when it arrived so (see FinalImage)


@dataclass(frozen=True, slots=True)
class FinalImage:
    """Image `index` of the job, as pixels (local engines) or encoded bytes (upstreams)."""

    index: int
    image: Image.Image | None = None
    encoded: bytes | None = None
    media_type: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # `encoded` as standard base64 text, when it arrived so (an upstream's b64_json): the response
    # reuses it rather than encoding `encoded` again (a 1024x1024 PNG: 1.5 MB of text).
    b64: str | None = None


EngineEvent = PartialImage | FinalImage
