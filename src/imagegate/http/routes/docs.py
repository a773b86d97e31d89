"""GET /docs (Swagger UI) and /redoc (ReDoc): the API documentation, with every asset served here.

FastAPI's own pages load their JavaScript, CSS and favicon from a public CDN when viewed, so on a
machine without the internet, or behind a filter, they are blank. These pages load the copies that
the `fastapi-offline` package ships (Swagger UI 5, ReDoc 2 and FastAPI's favicon) from
/docs/assets/ on this server.

The rule for every HTML page imagegate serves: no asset from another host at view time. `page()`
adds a Content-Security-Policy that has browsers hold to it; tests/pages/test_offline_pages.py
renders the pages in Chromium with only loopback reachable, and scans every HTML route.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib.resources import files

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

router = APIRouter(include_in_schema=False)

ASSETS = "/docs/assets"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# ReDoc's sidebar shows Redocly's logo from Redocly's CDN, unconditionally; an empty SVG takes its
# place (the text link to redocly.com stays: following a link is the reader's choice, not an asset).
_REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
_BLANK_SVG = b"\"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E\""

# Only this server. The inline script and styles are the pages' own (Swagger UI's start-up call,
# both UIs' style attributes); data: and blob: are what the UIs build in the page (icons, the
# logo above, ReDoc's search worker).
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
    ]
)


def page(html: HTMLResponse) -> HTMLResponse:
    """`html` with the policy that keeps a browser from fetching anything off this server."""
    html.headers["Content-Security-Policy"] = CSP
    return html


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None  # the text files: 2.8 MB of them are 0.77 MB gzipped
    media_type: str
    etag: str


@functools.cache
def _asset(name: str) -> _Asset:
    """One file of fastapi-offline's static/, read and compressed once per process (80 ms)."""
    body = files("fastapi_offline").joinpath("static", name).read_bytes()
    if name == "redoc.standalone.js":
        body = body.replace(_REDOC_LOGO, _BLANK_SVG)
    media_type = _MEDIA_TYPES[name]
    gzipped = gzip.compress(body, 6, mtime=0) if media_type.startswith("text/") else None
    return _Asset(body, gzipped, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@router.get(ASSETS + "/{name}")
async def asset(name: str, request: Request) -> Response:
    if name not in _MEDIA_TYPES:
        raise HTTPException(404)
    found = await anyio.to_thread.run_sync(_asset, name)  # the first read is not on the event loop
    # Revalidated on each view (a 304 costs nothing), so an upgrade's new files are seen at once.
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, media_type=found.media_type, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return page(
        get_swagger_ui_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # null: never the badge image from validator.swagger.io (Swagger UI's default, shown
            # by its standalone layout, should anyone switch to that one).
            swagger_ui_parameters={**(request.app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return page(
        get_redoc_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
    )
