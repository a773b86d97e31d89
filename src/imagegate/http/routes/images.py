"""POST /v1/images/generations and /v1/images/edits (JSON and multipart), JSON or SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser

from imagegate.errors import GatewayError, InvalidRequest
from imagegate.flow import idempotency
from imagegate.flow.request import ImageRequest, Upload
from imagegate.flow.run import ImageFlow, RequestContext
from imagegate.http import wire
from imagegate.http.deps import base_url, request_id
from imagegate.http.fastjson import FastJSONResponse
from imagegate.payload import Payload
from imagegate.storage.keys import ApiKey

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
async def generations(request: Request) -> Response:
    flow, key = await _caller(request)
    params = await json_body(request)
    return await run_request(ImageRequest("generation", params), request, flow, key)


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
async def edits(request: Request) -> Response:
    flow, key = await _caller(request)
    content_type = request.headers.get("content-type", "").strip().lower()  # media types ignore case
    if content_type.startswith("application/json"):
        return await run_request(ImageRequest("edit", await json_body(request)), request, flow, key)
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "Unsupported Content-Type for /v1/images/edits: send multipart/form-data "
            "(files) or application/json (image URLs).",
            code="unsupported_content_type",
        )
    image_request, form = await multipart(request)
    # The uploads stay in their temporary files until the response (or its stream) is sent.
    try:
        response = await run_request(image_request, request, flow, key)
    except BaseException:
        await form.close()
        raise
    response.background = BackgroundTask(form.close)
    return response


async def _caller(request: Request) -> tuple[ImageFlow, ApiKey]:
    """The flow and the calling key, as deps.py's FlowDep and KeyDep give them: called directly on
    the two hottest routes, where FastAPI's dependency solving was 5-10% of a small request."""
    flow: ImageFlow = request.app.state.flow
    return flow, await flow.authenticate(request.headers.get("authorization"))


async def run_request(
    image_request: ImageRequest, request: Request, flow: ImageFlow, key: ApiKey
) -> Response:
    ctx = RequestContext(
        request_id=request_id(request),
        base_url=base_url(request),
        idempotency_key=idempotency.check_key(request.headers.get("idempotency-key")),
    )
    if _respond_async(request):
        webhook_url = image_request.params.pop("webhook_url", None)
        job = await request.app.state.jobs.submit(image_request, key, ctx, webhook_url)
        location = f"{ctx.base_url}/v1/images/jobs/{job['id']}"
        return FastJSONResponse(
            job, status_code=202, headers={"location": location, "cache-control": "no-store"}
        )
    if "webhook_url" in image_request.params:
        raise InvalidRequest(
            "'webhook_url' needs an asynchronous job: send the header 'Prefer: respond-async'.",
            param="webhook_url",
            code="invalid_value",
        )
    outcome = await flow.handle(image_request, key, ctx)
    if outcome.events is not None:
        return StreamingResponse(
            _sse(outcome.events),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **outcome.headers},
        )
    return FastJSONResponse(outcome.body, headers=outcome.headers)


def _respond_async(request: Request) -> bool:
    """RFC 7240: `Prefer: respond-async` (among other preferences, any case)."""
    prefer = ",".join(request.headers.getlist("prefer"))
    return any(p.split(";")[0].strip().lower() == "respond-async" for p in prefer.split(","))


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        params = json.loads(raw)
        if b"\\" in raw:  # a "\\ud800" escape parses to a lone surrogate, which no UTF-8
            json.dumps(params, ensure_ascii=False).encode()  # response can quote or echo
    except UnicodeEncodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request: it contains a \\u escape of a "
            "lone UTF-16 surrogate, which is not valid Unicode.",
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting recurses
        params = None
    if not isinstance(params, dict):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The API expects a JSON object "
            "with at least a 'prompt' field.",
            code="invalid_json",
        )
    return params


class _MultiPartParser(MultiPartParser):
    """Starlette's parser, noting whether the closing boundary arrived: without it, starlette
    returns the parts before the cut and silently drops the unfinished last one."""

    complete = False

    def on_end(self) -> None:
        self.complete = True


async def multipart(request: Request) -> tuple[ImageRequest, FormData]:
    parser = _MultiPartParser(request.headers, request.stream(), max_files=MAX_FILES, max_fields=MAX_FIELDS)
    try:
        form = await parser.parse()
    except GatewayError:
        raise
    except Exception as exc:  # malformed bodies, too many parts
        detail = getattr(exc, "message", None) or "the body is not valid multipart/form-data"
        raise InvalidRequest(f"Could not parse the multipart body: {detail}.") from exc
    params: dict[str, Any] = {}
    uploads: list[Upload] = []
    if not parser.complete:
        await form.close()
        # The spool file of a part cut short is in no form item: close it too.
        for file in getattr(parser, "_files_to_close_on_error", ()):
            file.close()
        raise InvalidRequest(
            "Could not parse the multipart body: it is empty or ends before its closing boundary."
        )
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            # Not read into memory: a relayed file is streamed from its temporary file.
            uploads.append(Upload(name, value.filename, value.content_type, Payload(file=value.file)))
        else:
            params[name] = value
    return ImageRequest("edit", params, uploads, multipart=True), form
