"""What the HTTP edge hands the flow: raw parameters and uploads, nothing FastAPI-specific."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from imagegate.payload import Payload


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part of a multipart body, left in the temporary file the parser wrote."""

    field: str  # "image", "image[]", "image[0]" or "mask"
    filename: str | None
    content_type: str | None
    payload: Payload


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
