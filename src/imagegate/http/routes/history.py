"""The image history (imagegate extension): GET /v1/images/history, a key's own creations, and
GET /admin/history, every key's. Newest first, paged by `before` (the last entry's id), filtered
by time (`since`, `until`: Unix seconds) and `model`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from imagegate.http.deps import KeyDep
from imagegate.http.routes.admin import AdminDep
from imagegate.pricing import micros_to_usd

router = APIRouter(tags=["history"])


class Page:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        before: Annotated[str | None, Query(max_length=24, pattern=r"^hist_[0-9]{1,10}$")] = None,
        since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        model: Annotated[str | None, Query(max_length=100)] = None,
    ) -> None:
        self.limit, self.since, self.until, self.model = limit, since, until, model
        self.before = int(before.removeprefix("hist_")) if before else None


PageDep = Annotated[Page, Depends(Page)]


@router.get("/v1/images/history", summary="This key's images, with their prompts and costs")
async def own_history(request: Request, key: KeyDep, page: PageDep) -> dict[str, Any]:
    return await history_page(request, page, key.id, admin=False)


@router.get("/admin/history", summary="Every key's images (admin)")
async def all_history(
    request: Request,
    _accounts: AdminDep,
    page: PageDep,
    key_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    return await history_page(request, page, key_id, admin=True)


async def history_page(request: Request, page: Page, key_id: int | None, *, admin: bool) -> dict[str, Any]:
    stores, settings = request.app.state.stores, request.app.state.settings
    flow = request.app.state.flow
    rows = await stores.db.read(
        stores.history.page, key_id, page.limit + 1, page.before, page.since, page.until, page.model
    )
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    now = request.app.state.clock.now()
    data = []
    for row in rows[: page.limit]:
        alive = row["created_at"] + settings.image_retention_s > now
        entry: dict[str, Any] = {
            "id": f"hist_{row['id']}",
            "object": "image.history_entry",
            "request_id": row["request_id"],
            "created_at": int(row["created_at"]),
            "model": row["model"],
            "engine": row["engine"],
            "prompt": row["prompt"],
            "params": row["params"],
            "cost_usd": micros_to_usd(row["cost_micros"]),
            "inputs": row["inputs"],
            "images": [
                {
                    "sha256": out["sha256"],
                    "format": out["ext"],
                    "url": flow.signer.url(base, f"{out['sha256']}.{out['ext']}") if alive else None,
                }
                for out in row["outputs"]
            ],
        }
        if admin:
            entry.update(key_id=row["key_id"], channel=row["channel"])
        data.append(entry)
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > page.limit,
        "last_id": data[-1]["id"] if data else None,
    }
