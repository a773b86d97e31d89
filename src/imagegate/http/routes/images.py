"""POST /v1/images/generations and /v1/images/edits (JSON and multipart), JSON or SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from imagegate.errors import GatewayError, InvalidRequest
from imagegate.flow.request import ImageRequest, Upload
from imagegate.http import wire
from imagegate.http.deps import FlowDep, KeyDep, base_url, request_id

router = APIRouter(prefix="/v1/images", tags=["images"])

# Multipart limits: 16 images + a mask, and a few dozen text fields.
MAX_FILES = 17
MAX_FIELDS = 64


@router.post(
    "/generations",
    summary="Create images from a prompt",
    response_model=wire.ImagesResponse,
    responses={**wire.ERRORS, 200: {"content": {"text/event-stream": {}}}},
    openapi_extra=wire.body(("application/json", wire.CreateImageRequest)),
)
async def generations(request: Request, flow: FlowDep, _key: KeyDep) -> Response:
    params = await _json_body(request)
    return await _run(ImageRequest("generation", params), request, flow)


@router.post(
    "/edits",
    summary="Edit images with a prompt, reference images and an optional mask",
    response_model=wire.ImagesResponse,
    responses={**wire.ERRORS, 200: {"content": {"text/event-stream": {}}}},
    openapi_extra=wire.body(
        ("multipart/form-data", wire.EditImageMultipartRequest),
        ("application/json", wire.EditImageJsonRequest),
    ),
)
async def edits(request: Request, flow: FlowDep, _key: KeyDep) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        image_request = await _multipart(request)
    elif content_type.startswith("application/json"):
        image_request = ImageRequest("edit", await _json_body(request))
    else:
        raise InvalidRequest(
            "Unsupported Content-Type for /v1/images/edits: send multipart/form-data "
            "(files) or application/json (image URLs).",
            code="unsupported_content_type",
        )
    return await _run(image_request, request, flow)


async def _run(image_request: ImageRequest, request: Request, flow: FlowDep) -> Response:
    prepared = await flow.prepare(image_request, request_id(request))
    if prepared.options.stream:
        return StreamingResponse(
            _sse(flow.stream(prepared, base_url(request))),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    return JSONResponse(await flow.generate(prepared, base_url(request)))


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        params = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        params = None
    if not isinstance(params, dict):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The API expects a JSON object "
            "with at least a 'prompt' field.",
            code="invalid_json",
        )
    return params


async def _multipart(request: Request) -> ImageRequest:
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
    except GatewayError:
        raise
    except Exception as exc:  # malformed bodies, too many parts
        detail = getattr(exc, "detail", None) or "the body is not valid multipart/form-data"
        raise InvalidRequest(f"Could not parse the multipart body: {detail}.") from exc
    params: dict[str, Any] = {}
    uploads: list[Upload] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                uploads.append(Upload(name, value.filename, value.content_type, data))
            else:
                params[name] = value
    finally:
        await form.close()
    return ImageRequest("edit", params, uploads, multipart=True)
