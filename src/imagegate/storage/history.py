"""The image history: one row per request that delivered images, written in the transaction that
settles it (storage/finish.py), kept `history_retention_s` (separately from the blobs: a row
outlives its images, then names them by hash only). The prompt is kept unless the operator turned
that off (`history_prompts`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection

from imagegate.clock import Clock
from imagegate.storage.statements import Statement
from imagegate.storage.statements import json_text as _json
from imagegate.storage.tables import image_history


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    request_id: str
    key_id: int
    created_at: float
    model: str | None
    engine: str | None
    channel: str | None
    prompt: str | None  # None: the operator keeps no prompts
    params: dict[str, Any]
    inputs: list[str]  # sha256 (hex) of each input image, then the mask
    outputs: list[dict[str, str]] = field(default_factory=list)  # {"sha256", "ext"} of each image
    cost_micros: int = 0


# Compiled once (storage/statements.py): `insert().values(...)` built and compiled a statement on
# every request, 0.5 ms of a small request's CPU (py-spy --gil, bench/relay.py).
_RECORD = Statement(
    insert(image_history).inline(),
    (
        "request_id",
        "key_id",
        "created_at",
        "expires_at",
        "model",
        "engine",
        "channel",
        "prompt",
        "params",
        "inputs",
        "outputs",
        "cost_micros",
    ),
)


class HistoryRepo:
    def __init__(self, engine: Engine, clock: Clock, retention_s: float) -> None:
        self.engine = engine
        self.clock = clock
        self.retention_s = retention_s

    def record_in(self, conn: Connection, entry: HistoryEntry) -> None:
        _RECORD.run(
            conn,
            {
                "request_id": entry.request_id,
                "key_id": entry.key_id,
                "created_at": entry.created_at,
                "expires_at": entry.created_at + self.retention_s,
                "model": entry.model,
                "engine": entry.engine,
                "channel": entry.channel,
                "prompt": entry.prompt,
                "params": _json(entry.params),
                "inputs": _json(entry.inputs),
                "outputs": _json(entry.outputs),
                "cost_micros": entry.cost_micros,
            },
        )

    def page(
        self,
        key_id: int | None,
        limit: int,
        before: int | None = None,
        since: float | None = None,
        until: float | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before`: the id of the last row of the previous page."""
        h = image_history.c
        query = select(image_history).where(h.expires_at > self.clock.now())
        if key_id is not None:
            query = query.where(h.key_id == key_id)
        if before is not None:
            query = query.where(h.id < before)
        if since is not None:
            query = query.where(h.created_at >= since)
        if until is not None:
            query = query.where(h.created_at < until)
        if model is not None:
            query = query.where(h.model == model)
        query = query.order_by(h.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_row(r._mapping) for r in conn.execute(query)]

    def sweep(self) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    delete(image_history).where(image_history.c.expires_at <= self.clock.now())
                ).rowcount
            )


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "request_id": r["request_id"],
        "key_id": r["key_id"],
        "created_at": r["created_at"],
        "model": r["model"],
        "engine": r["engine"],
        "channel": r["channel"],
        "prompt": r["prompt"],
        "params": json.loads(r["params"]),
        "inputs": json.loads(r["inputs"]),
        "outputs": json.loads(r["outputs"]),
        "cost_micros": r["cost_micros"],
    }
