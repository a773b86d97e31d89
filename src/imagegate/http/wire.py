"""Wire models for the OpenAPI document at /openapi.json.

Requests are parsed by flow/validate.py (OpenAI's error wording, the guide's aliases,
multipart strings), so these models describe the bodies rather than parse them; a test
(tests/unit/http/test_wire.py) keeps the fields they document and the fields the parser accepts
the same.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.storage import bounds

Quality = Literal["low", "medium", "high", "auto"]
Background = Literal["transparent", "opaque", "auto"]
Format = Literal["png", "jpeg", "webp"]

SIZE_DOC = (
    "'auto', '1024x1024', '1536x1024', '1024x1536', or a custom 'WIDTHxHEIGHT' with edges "
    "from 64 to 3840 px, an aspect ratio up to 3:1 and at most 8294400 pixels."
)


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=32000)
    model: str | None = Field(default=None, description="Default: the server's default model.")
    n: int | None = Field(default=1, ge=1, le=10)
    quality: Quality | None = Field(default="auto", description="'auto' resolves to 'medium'.")
    size: str | None = Field(default="auto", description=SIZE_DOC)
    background: Background | None = "auto"
    output_format: Format | None = "png"
    output_compression: int | None = Field(default=100, ge=0, le=100)
    moderation: Literal["auto", "low"] | None = "auto"
    stream: bool | None = False
    partial_images: int | None = Field(default=0, ge=0, le=3)
    response_format: Literal["url", "b64_json"] | None = Field(
        default=None, description="imagegate: omit for both b64_json and url."
    )
    user: str | None = Field(default=None, max_length=bounds.USER)
    safety_identifier: str | None = Field(default=None, max_length=bounds.USER)
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="imagegate: same prompt + seed, same image."
    )
    effort: Literal["low", "medium", "high"] | None = Field(
        default=None, description="The guide's spelling: the engine's detail/steps knob."
    )
    format: Format | None = Field(default=None, description="Alias of output_format.")
    compression: int | None = Field(default=None, ge=0, le=100, description="Alias.")
    transparency: bool | None = Field(default=None, description="true = background 'transparent'.")
    complexity: Literal["low", "medium", "high"] | None = Field(
        default=None, description="The SDK's spelling of `effort`."
    )
    frame_count: int | None = Field(
        default=None, description="Sent by newer SDKs for animated output: refused (400 invalid_value)."
    )
    frame_duration_ms: int | None = Field(
        default=None, description="As frame_count: refused (400 invalid_value)."
    )
    svg: bool | None = Field(default=None, description="Vector output: refused (400 invalid_value).")


class ImageRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_url: str = Field(description="An http(s) URL or a base64 data URL.")


class CreateImageRequest(_Common):
    """POST /v1/images/generations (application/json)."""

    image: str | list[str] | None = Field(
        default=None, description="The guide's spelling: reference image URL(s); makes an edit."
    )
    images: list[ImageRef] | None = Field(
        default=None, max_length=16, description="Reference images (as an edit's); makes an edit."
    )
    input_fidelity: Literal["low", "high"] | None = Field(
        default=None, description="With reference images: how closely to keep their details."
    )


class EditImageJsonRequest(_Common):
    """POST /v1/images/edits (application/json)."""

    images: list[ImageRef] = Field(min_length=1, max_length=16)
    image: str | list[str] | None = Field(
        default=None, description="The guide's spelling of `images`: URL(s)."
    )
    mask: ImageRef | None = None
    input_fidelity: Literal["low", "high"] | None = "low"
    markup: Any | None = Field(default=None, description="Sent by newer SDKs: refused (400 invalid_value).")


class EditImageMultipartRequest(_Common):
    """POST /v1/images/edits (multipart/form-data): the JSON fields as text parts, and files."""

    image: list[bytes] = Field(
        json_schema_extra={"items": {"type": "string", "format": "binary"}},
        description="1 to 16 png/webp/jpeg files, as `image` or `image[]` parts.",
    )
    image_array: list[bytes] | None = Field(
        default=None,
        alias="image[]",
        json_schema_extra={"items": {"type": "string", "format": "binary"}},
        description="The same files as `image[]` parts (what the openai SDK sends).",
    )
    mask: bytes | None = Field(
        default=None,
        json_schema_extra={"type": "string", "format": "binary"},
        description="PNG with alpha, the size of the first image; alpha 0 marks the edit area.",
    )
    input_fidelity: Literal["low", "high"] | None = None
    markup: Any | None = Field(default=None, description="Sent by newer SDKs: refused (400 invalid_value).")


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None


class InputTokensDetails(BaseModel):
    text_tokens: int
    image_tokens: int


class OutputTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class ImageUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    total_tokens: int
    output_tokens_details: OutputTokensDetails | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: Literal["transparent", "opaque"]
    output_format: Format
    quality: Literal["low", "medium", "high"]
    size: str
    usage: ImageUsage
    seed: int


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    engine: str = Field(description="imagegate: the engine that serves this model.")
    engine_description: str
    capabilities: dict[str, Any] | None = Field(
        default=None,
        description="imagegate: what the model's first route renders (sizes, formats, max_n, ...); "
        "a request beyond them is adapted (x-imagegate-adapted) or refused with unsupported_value.",
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


REQUEST_SCHEMAS: tuple[type[BaseModel], ...] = (
    CreateImageRequest,
    EditImageJsonRequest,
    EditImageMultipartRequest,
)


def body(*content: tuple[str, type[BaseModel]]) -> dict[str, Any]:
    """openapi_extra for a route whose body the flow parses itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                for media, model in content
            },
        }
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 500)
}
