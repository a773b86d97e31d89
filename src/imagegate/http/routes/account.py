"""A key's view of itself: GET /v1/usage (balance, spending) and GET /v1/pricing (imagegate)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from imagegate.http.deps import FlowDep, KeyDep
from imagegate.pricing import PPM, price_for

router = APIRouter(prefix="/v1", tags=["account"])


@router.get("/usage")
async def usage(request: Request, key: KeyDep) -> dict[str, Any]:
    accounts = request.app.state.accounts
    return await anyio.to_thread.run_sync(accounts.account, key)  # type: ignore[no-any-return]


@router.get("/pricing")
async def pricing(flow: FlowDep, key: KeyDep) -> dict[str, Any]:
    settings = flow.settings
    tier = settings.tiers.get(key.tier)
    multiplier = key.multiplier_ppm if key.multiplier_ppm is not None else (
        tier.multiplier_ppm if tier else PPM)
    models = {m: price_for(settings.prices, m).model_dump() for m in flow.registry.models()}
    return {"object": "pricing", "currency": "usd", "unit": "micro_usd", "multiplier_ppm": multiplier,
            "models": models}
