"""The admin API under /admin/ (bearer IMAGEGATE_ADMIN_KEY): keys, credit, usage, channels."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from imagegate.accounts import Accounts
from imagegate.channels import Channels
from imagegate.errors import AuthenticationFailed, InvalidValue, PermissionDenied
from imagegate.http import guard
from imagegate.storage import bounds

router = APIRouter(prefix="/admin", tags=["admin"])
T = TypeVar("T")


async def require_admin(request: Request) -> Accounts:
    configured = request.app.state.settings.admin_key
    if not configured:
        raise PermissionDenied(
            "The admin API is disabled: set IMAGEGATE_ADMIN_KEY to enable it.", code="admin_disabled"
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    right = scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode("utf-8", "surrogatepass"), configured.encode()
    )
    await guard.admitted(request, right)  # 429 for a blocked address, whatever the key
    if not right:
        raise AuthenticationFailed("Invalid admin key.", code="invalid_admin_key")
    return request.app.state.accounts  # type: ignore[no-any-return]


AdminDep = Annotated[Accounts, Depends(require_admin)]


async def _db(request: Request, call: Callable[[], T]) -> T:
    """An admin call's database work, where every database call runs (storage/runner.py)."""
    return await request.app.state.stores.db.run_in_thread(call)  # type: ignore[no-any-return]


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    ipm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    multiplier: Decimal | None = Field(default=None, ge=0, description="Price multiplier, 1 = list price.")
    allowed_models: list[str] | None = None
    expires_at: float | None = Field(default=None, description="Unix time after which the key is refused.")


class KeyCreate(_Limits):
    name: str = Field(min_length=1, max_length=bounds.KEY_NAME)
    tier: str = "free"
    credit_usd: Decimal | None = Field(default=None, ge=0, description="Default: the trial credit.")


class KeyUpdate(_Limits):
    name: str | None = Field(default=None, min_length=1, max_length=bounds.KEY_NAME)
    tier: str | None = None


class Credit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_usd: Decimal = Field(gt=0)
    note: str | None = None


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, accounts: AdminDep, request: Request) -> JSONResponse:
    fields = body.model_dump(exclude={"name", "tier", "credit_usd"})
    view, secret = await _db(
        request, lambda: accounts.create_key(body.name, body.tier, body.credit_usd, **fields)
    )
    return JSONResponse({**view, "secret": secret}, status_code=201)


@router.get("/keys")
async def list_keys(accounts: AdminDep, request: Request) -> dict[str, Any]:
    return {"object": "list", "data": await _db(request, accounts.list_keys)}


@router.get("/keys/{ident}")
async def get_key(ident: str, accounts: AdminDep, request: Request) -> dict[str, Any]:
    return await _db(request, lambda: accounts.get_key(ident))


@router.patch("/keys/{ident}")
async def update_key(ident: str, body: KeyUpdate, accounts: AdminDep, request: Request) -> dict[str, Any]:
    return await _db(request, lambda: accounts.update_key(ident, **body.model_dump(exclude_unset=True)))


@router.delete("/keys/{ident}")
async def revoke_key(ident: str, accounts: AdminDep, request: Request) -> dict[str, Any]:
    return await _db(request, lambda: accounts.revoke_key(ident))


@router.post("/keys/{ident}/credits")
async def add_credit(ident: str, body: Credit, accounts: AdminDep, request: Request) -> dict[str, Any]:
    return await _db(request, lambda: accounts.add_credit(ident, body.amount_usd, body.note))


UsageBy = Literal["key", "channel", "model", "error", "latency"]


@router.get("/usage")
async def usage(
    accounts: AdminDep,
    request: Request,
    key: str | None = None,
    days: int | None = None,
    by: UsageBy = "key",
) -> dict[str, Any]:
    """Totals per UTC day and key, or per day and `by`: channel (with the operator's margin),
    model, error (status and code of the failed requests), latency (percentiles in ms)."""
    now = request.app.state.clock.now()
    if by == "key":
        return {"object": "list", "data": await _db(request, lambda: accounts.usage_totals(key, days, now))}
    if key is not None:
        raise InvalidValue(f"'key' cannot be combined with by={by}.", param="key")
    totals = {
        "channel": accounts.usage_by_channel,
        "model": accounts.usage_by_model,
        "error": accounts.usage_errors,
        "latency": accounts.usage_latency,
    }[by]
    return {"object": "list", "data": await _db(request, lambda: totals(days, now))}


# --- Upstream channels ----------------------------------------------------------------------


def require_channels(request: Request, _accounts: AdminDep) -> Channels:
    return request.app.state.channels  # type: ignore[no-any-return]


ChannelsDep = Annotated[Channels, Depends(require_channels)]


class _ChannelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_map: dict[str, str] | None = Field(default=None, description="Client name -> upstream name.")
    priority: int | None = Field(default=None, description="Higher first. Default 0.")
    weight: int | None = Field(default=None, ge=1, description="Share among equal priorities. Default 1.")
    timeout_s: float | None = Field(default=None, ge=1)
    prices: dict[str, Any] | None = Field(default=None, description="What the operator pays (micro-USD).")
    options: dict[str, Any] | None = Field(
        default=None,
        description="The provider's settings (Azure: deployment, api_version; Vertex: project, location).",
    )
    capabilities: dict[str, Any] | None = Field(
        default=None, description="Overrides of the models' capabilities (as GET /v1/models/{id} shows them)."
    )


class ChannelCreate(_ChannelFields):
    name: str = Field(min_length=1, max_length=bounds.CHANNEL_NAME)
    provider: str = Field(default="openai", description="openai, azure, gemini, vertex, seedream or xai.")
    base_url: str | None = Field(default=None, description="Default: the provider's public endpoint.")
    api_key: str = Field(min_length=1)
    models: list[str] = Field(min_length=1)


class ChannelUpdate(_ChannelFields):
    base_url: str | None = None
    api_key: str | None = Field(default=None, min_length=1)
    models: list[str] | None = None
    enabled: bool | None = None


@router.post("/channels", status_code=201)
async def create_channel(body: ChannelCreate, channels: ChannelsDep, request: Request) -> JSONResponse:
    fields = body.model_dump(exclude={"name", "base_url", "api_key", "models"}, exclude_none=True)
    view = await _db(
        request, lambda: channels.add(body.name, body.base_url, body.api_key, body.models, **fields)
    )
    await request.app.state.maintenance.reload_channels()
    return JSONResponse(view, status_code=201)


@router.get("/channels")
async def list_channels(channels: ChannelsDep, request: Request) -> dict[str, Any]:
    return {"object": "list", "data": await _db(request, channels.list)}


@router.get("/channels/{ident}")
async def get_channel(ident: str, channels: ChannelsDep, request: Request) -> dict[str, Any]:
    return await _db(request, lambda: channels.get(ident))


@router.patch("/channels/{ident}")
async def update_channel(
    ident: str, body: ChannelUpdate, channels: ChannelsDep, request: Request
) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    view = await _db(request, lambda: channels.update(ident, **fields))
    await request.app.state.maintenance.reload_channels()
    return view


@router.delete("/channels/{ident}")
async def remove_channel(ident: str, channels: ChannelsDep, request: Request) -> dict[str, Any]:
    await _db(request, lambda: channels.remove(ident))
    await request.app.state.maintenance.reload_channels()
    return {"id": ident, "deleted": True}
