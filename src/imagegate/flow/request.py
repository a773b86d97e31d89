"""What the HTTP edge hands the flow: raw parameters and uploads, nothing FastAPI-specific."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part of a multipart body."""

    field: str  # "image", "image[]", "image[0]" or "mask"
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """A generations or edits call as received: JSON values or multipart strings."""

    kind: Literal["generation", "edit"]
    params: dict[str, Any]
    uploads: list[Upload] = field(default_factory=list)
    multipart: bool = False


@dataclass(frozen=True, slots=True)
class ResponseOptions:
    """How to render the result: which of b64_json and url to include, and whether to stream."""

    include_b64: bool = True
    include_url: bool = True
    stream: bool = False
    safety_identifier: str | None = None
