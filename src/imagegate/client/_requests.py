"""A logical image call (`Call`) and how it goes on the wire.

Generations are JSON. Edits are multipart (`image[]` parts and a `mask` part) when every
input is a file, and JSON (`images: [{image_url}]`, `mask: {image_url}`) when any input is a
URL; files then travel as data URLs. Parameters set to None are left out, so the server's
defaults apply; unknown parameters are forwarded untouched for servers that know them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from imagegate.client._inputs import ImageFile, ImageRef, ImageURL, cache_identity
from imagegate.client._plan import FilePart, Request

# Parameters that change nothing in the pixels, so they stay out of cache keys.
NON_VISUAL = frozenset({"user", "stream", "response_format", "partial_images", "safety_identifier"})


class ImageParams(TypedDict, total=False):
    """The parameters of a generation or edit (all optional; see the README for meanings)."""

    model: str
    n: int
    size: str
    quality: Literal["low", "medium", "high", "auto"]
    background: Literal["transparent", "opaque", "auto"]
    output_format: Literal["png", "jpeg", "webp"]
    output_compression: int
    moderation: Literal["auto", "low"]
    seed: int
    user: str
    input_fidelity: Literal["low", "high"]
    response_format: Literal["url", "b64_json"]
    effort: Literal["low", "medium", "high"]
    partial_images: int
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Call:
    """One logical generate or edit request (retries of it are the same Call)."""

    kind: Literal["generate", "edit"]
    prompt: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    images: tuple[ImageRef, ...] = ()
    mask: ImageRef | None = None
    idempotency_key: str | None = None

    @property
    def n(self) -> int:
        """Number of images asked for."""
        return int(self.params.get("n") or 1)

    def path(self) -> str:
        """The endpoint, relative to the base URL."""
        return "images/edits" if self.kind == "edit" else "images/generations"

    def uses_json(self) -> bool:
        """Whether the body is JSON (always for generations; for edits, when any input is a URL)."""
        refs = [*self.images, *([self.mask] if self.mask else [])]
        return self.kind == "generate" or any(isinstance(ref, ImageURL) for ref in refs)

    def cache_material(self) -> dict[str, Any]:
        """What identifies the images this call produces (the input of the cache key)."""
        return {
            "kind": self.kind,
            "model": self.model,
            "prompt": self.prompt,
            "params": {k: v for k, v in self.params.items() if k not in NON_VISUAL},
            "images": [cache_identity(ref) for ref in self.images],
            "mask": cache_identity(self.mask) if self.mask else None,
        }


def make_call(
    kind: Literal["generate", "edit"],
    prompt: str,
    params: Mapping[str, Any],
    default_model: str,
    images: tuple[ImageRef, ...] = (),
    mask: ImageRef | None = None,
) -> Call:
    """A Call from user arguments: drops None values, resolves the model, lifts the idempotency key."""
    clean = {k: v for k, v in params.items() if v is not None}
    model = str(clean.pop("model", None) or default_model)
    key = clean.pop("idempotency_key", None)
    clean.pop("stream", None)  # streaming is its own method
    return Call(kind, prompt, model, clean, images, mask, key)


def _url(ref: ImageRef) -> str:
    return ref.url if isinstance(ref, ImageURL) else ref.data_url()


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def to_request(
    call: Call, headers: Mapping[str, str], *, stream: bool = False, extra: Mapping[str, Any] | None = None
) -> Request:
    """The HTTP request for `call`, with `extra` body fields (a job's `webhook_url`) when given."""
    body: dict[str, Any] = {"model": call.model, "prompt": call.prompt, **call.params, **(extra or {})}
    if stream:
        body["stream"] = True
    if call.uses_json():
        if call.kind == "edit":
            body["images"] = [{"image_url": _url(ref)} for ref in call.images]
            if call.mask is not None:
                body["mask"] = {"image_url": _url(call.mask)}
        return Request("POST", call.path(), headers, json=body, stream=stream)
    files: list[FilePart] = [
        ("image[]", (ref.filename, ref.data, ref.content_type))
        for ref in call.images
        if isinstance(ref, ImageFile)
    ]
    if isinstance(call.mask, ImageFile):
        files.append(("mask", (call.mask.filename, call.mask.data, call.mask.content_type)))
    data = {name: _form_value(value) for name, value in body.items()}
    return Request("POST", call.path(), headers, data=data, files=files, stream=stream)


def input_sizes(call: Call) -> list[tuple[int, int]]:
    """Pixel sizes of the file inputs (for cost estimates); empty without Pillow."""
    try:
        from PIL import Image as PILImage
    except ImportError:  # pragma: no cover - Pillow is a base dependency
        return []
    sizes = []
    for ref in call.images:
        if isinstance(ref, ImageFile):
            try:
                with PILImage.open(io.BytesIO(ref.data)) as image:
                    sizes.append(image.size)
            except OSError:
                continue
    return sizes
