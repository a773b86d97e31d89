"""Typed results: `ImageResult` (a list of `Image`s plus what the server echoed and charged)
and `StreamEvent` (one partial or completed image of a stream)."""

from __future__ import annotations

import base64
import builtins
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from imagegate.client._inputs import sniff_type
from imagegate.client.pricing import micro_to_usd

FORMATS: Mapping[str, str] = MappingProxyType(
    {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
)
EXTENSIONS: Mapping[str, str] = MappingProxyType({"png": ".png", "jpeg": ".jpg", "webp": ".webp"})


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of a request (OpenAI's `usage` object)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    text_tokens: int = 0  # input text tokens
    image_tokens: int = 0  # input image tokens

    @classmethod
    def from_json(cls, raw: Any) -> Usage | None:
        """Parse a `usage` object; None when absent or malformed."""
        if not isinstance(raw, Mapping):
            return None
        details = raw.get("input_tokens_details") or {}
        try:
            return cls(
                input_tokens=int(raw.get("input_tokens") or 0),
                output_tokens=int(raw.get("output_tokens") or 0),
                total_tokens=int(raw.get("total_tokens") or 0),
                text_tokens=int(details.get("text_tokens") or 0),
                image_tokens=int(details.get("image_tokens") or 0),
            )
        except (TypeError, ValueError):
            return None

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self._tuple(), other._tuple(), strict=True)))

    def _tuple(self) -> tuple[int, int, int, int, int]:
        return (self.input_tokens, self.output_tokens, self.total_tokens, self.text_tokens, self.image_tokens)


@dataclass(frozen=True, slots=True)
class Image:
    """One generated image: its bytes, its URL (if the server gave one) and the echoed parameters."""

    data: builtins.bytes
    url: str | None = None
    index: int = 0
    output_format: str | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    seed: int | None = None
    revised_prompt: str | None = None

    @property
    def bytes(self) -> builtins.bytes:
        """The encoded image (png, jpeg or webp, as the server sent it)."""
        return self.data

    @property
    def format(self) -> str:
        """The encoding of `.bytes`: png, jpeg, webp (sniffed, else the echoed output_format)."""
        sniffed = sniff_type(self.data)
        if sniffed.startswith("image/"):
            return sniffed.split("/", 1)[1]
        return self.output_format or "png"

    @property
    def b64_json(self) -> str:
        """The image as base64 (what the wire carried)."""
        return base64.b64encode(self.data).decode("ascii")

    def to_pil(self) -> Any:
        """The image as a loaded `PIL.Image.Image` (needs Pillow)."""
        from PIL import Image as PILImage

        image = PILImage.open(io.BytesIO(self.data))
        image.load()
        return image

    def save(self, path: str | Path) -> Path:
        """Write the image to `path` and return the path written.

        The format comes from the extension (.png, .jpg/.jpeg, .webp; converted with Pillow
        when it differs from what the server sent); without an extension, the server's format
        is kept and its extension added. Parent directories are created.
        """
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(EXTENSIONS.get(self.format, ".png"))
        wanted = FORMATS.get(target.suffix.lower())
        if wanted is None:
            raise ValueError(f"cannot save as {target.suffix!r}: use .png, .jpg, .jpeg or .webp")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.data if wanted == self.format else self._convert(wanted)
        target.write_bytes(data)
        return target

    def _convert(self, fmt: str) -> builtins.bytes:
        from PIL import Image as PILImage

        image = self.to_pil()
        if fmt == "jpeg" and image.mode in ("RGBA", "LA", "P"):
            # JPEG has no alpha: flatten onto white, as a viewer would show it.
            rgba = image.convert("RGBA")
            flat = PILImage.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        buffer = io.BytesIO()
        image.save(buffer, format=fmt.upper())
        return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The answer to one generate/edit call: its images, usage and cost.

    Iterate it (or index it) for the `Image`s; `.image` is the first one.
    """

    images: tuple[Image, ...]
    prompt: str
    model: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    created: int | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    seed: int | None = None
    usage: Usage | None = None
    cost_micro_usd: int = 0
    cost_estimated: bool = False  # True when the server sent no usage and the cost is our estimate
    cached: bool = False
    request_id: str | None = None

    @property
    def cost_usd(self) -> float:
        """What the call cost in dollars (0.0 for a cache hit: nothing was charged)."""
        return 0.0 if self.cached else micro_to_usd(self.cost_micro_usd)

    @property
    def image(self) -> Image:
        """The first image."""
        return self.images[0]

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Image]:
        return iter(self.images)

    def __getitem__(self, index: int) -> Image:
        return self.images[index]

    def save(self, path: str | Path) -> list[Path]:
        """Write every image: `path` itself for one image, else out-1.png, out-2.png ..."""
        target = Path(path)
        if len(self.images) == 1:
            return [self.images[0].save(target)]
        return [
            image.save(target.with_name(f"{target.stem}-{i}{target.suffix}"))
            for i, image in enumerate(self.images, start=1)
        ]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a streamed generation or edit: a partial image, or a completed one."""

    type: str
    image: Image
    partial: bool
    partial_image_index: int | None = None
    usage: Usage | None = None
    cost_micro_usd: int = 0

    @property
    def cost_usd(self) -> float:
        """The cost charged for this completed image (0.0 for partial events)."""
        return micro_to_usd(self.cost_micro_usd)


def image_from_item(item: Mapping[str, Any], index: int, echoed: Mapping[str, Any]) -> Image | None:
    """An `Image` from one `data` item (or a stream event) when it carries base64 bytes."""
    b64 = item.get("b64_json")
    if not b64:
        return None
    seed = echoed.get("seed")
    return Image(
        data=base64.b64decode(b64),
        url=item.get("url"),
        index=index,
        output_format=echoed.get("output_format"),
        size=echoed.get("size"),
        quality=echoed.get("quality"),
        background=echoed.get("background"),
        seed=int(seed) if isinstance(seed, int) else None,
        revised_prompt=item.get("revised_prompt"),
    )
