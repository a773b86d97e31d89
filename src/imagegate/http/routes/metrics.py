"""GET /metrics: Prometheus' text format (http/metrics.py), behind the admin key unless the
operator opened it (`IMAGEGATE_METRICS=open`) or turned it off (`off`: 404)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from imagegate.errors import NotFound
from imagegate.http.routes.admin import require_admin

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if settings.metrics == "off":
        raise NotFound("Metrics are turned off (IMAGEGATE_METRICS).")
    if settings.metrics == "admin":
        await require_admin(request)
    body = await anyio.to_thread.run_sync(request.app.state.metrics.render)  # jobs: a database read
    return Response(body, media_type=CONTENT_TYPE_LATEST)
