"""GatewayError -> HTTP status + OpenAI's error body, in one table."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from imagegate import errors as e

log = logging.getLogger("imagegate.http")


def error_response(exc: e.GatewayError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=e.status_of(exc), headers=exc.headers or None)


def install(app: FastAPI) -> None:
    """Every error a client can cause answers in OpenAI's shape; nothing leaks a traceback."""

    @app.exception_handler(e.GatewayError)
    async def _gateway(_request: Request, exc: e.GatewayError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client hung up before its body was complete (or its Content-Length promised
        # more than it sent): its mistake, not a server error, and nobody is left to answer.
        err = e.InvalidRequest(
            "The connection closed before the whole request body arrived.", code="incomplete_body"
        )
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err: e.GatewayError = e.NotFound(
                f"Unknown request URL: {request.method} {request.url.path}. Please check the URL for typos.",
                code="unknown_url",
            )
        elif exc.status_code == 405:
            err = e.InvalidRequest(
                f"Not allowed to {request.method} on {request.url.path}.",
                code="method_not_supported",
            )
            return JSONResponse(err.body(), status_code=405)
        else:
            err = e.InvalidRequest(str(exc.detail))
            return JSONResponse(err.body(), status_code=exc.status_code)
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(e.InvalidValue(str(first.get("msg", "Invalid request.")), param=param))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        err = e.GatewayError("The server had an error while processing your request.")
        return error_response(err)
