"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imagegate.flow.run import ImageFlow
from imagegate.storage.keys import ApiKey


async def get_flow(request: Request) -> ImageFlow:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request for nothing.
    return request.app.state.flow  # type: ignore[no-any-return]


FlowDep = Annotated[ImageFlow, Depends(get_flow)]


async def require_key(request: Request, flow: FlowDep) -> ApiKey:
    return await flow.authenticate(request.headers.get("authorization"))


KeyDep = Annotated[ApiKey, Depends(require_key)]


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "req_unknown"))


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
