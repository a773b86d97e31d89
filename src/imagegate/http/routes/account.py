"""A key's view of itself: GET /v1/usage (balance, spending) and GET /v1/pricing (imagegate)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from imagegate.flow.prepare import key_price
from imagegate.http.deps import FlowDep, KeyDep
from imagegate.pricing import PPM

router = APIRouter(prefix="/v1", tags=["account"])


@router.get("/usage")
async def usage(request: Request, key: KeyDep) -> dict[str, Any]:
    accounts, db = request.app.state.accounts, request.app.state.stores.db
    return await db.read_in_thread(accounts.account, key)  # type: ignore[no-any-return]


@router.get("/pricing")
async def pricing(flow: FlowDep, key: KeyDep) -> dict[str, Any]:
    settings = flow.settings
    tier = settings.tiers.get(key.tier)
    multiplier = (
        key.multiplier_ppm if key.multiplier_ppm is not None else (tier.multiplier_ppm if tier else PPM)
    )
    models = {
        m: key_price(settings, m, flow.registry.routes_for(m)).model_dump() for m in flow.registry.models()
    }
    return {
        "object": "pricing",
        "currency": "usd",
        "unit": "micro_usd",
        "multiplier_ppm": multiplier,
        "models": models,
    }
