"""Usage records: one row per request after authentication, success or failure.

`record_in` writes on the caller's connection, so the end of a request records its usage in
the same transaction as its settlement (storage/finish.py). The INSERT is built once, run on the
driver's cursor (storage/statements.py), and the row taken field by field (no `asdict`, which
deep-copies): 270 -> 60 us per record on SQLite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Engine, case, func, insert, select
from sqlalchemy.engine import Connection

from imagegate.storage.statements import Statement
from imagegate.storage.statements import json_text as _json
from imagegate.storage.tables import usage_records

# The latency buckets (ms) of the usage charts' percentiles, as a Prometheus histogram's.
LATENCY_BUCKETS_MS = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    request_id: str
    key_id: int
    created_at: float
    endpoint: str
    status: int
    model: str | None = None
    engine: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    images: int = 0
    text_in: int = 0
    image_in: int = 0
    image_out: int = 0
    cost_micros: int = 0
    latency_ms: int = 0
    error_code: str | None = None
    channel: str | None = None
    upstream_cost_micros: int | None = None
    attempts: int = 1
    maybe_billed: int = 0  # failed attempts the provider may have charged for anyway


_FIELDS = tuple(f.name for f in fields(UsageRecord))
_INSERT = Statement(insert(usage_records).inline(), (*_FIELDS, "day"))


class UsageRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, rec: UsageRecord) -> None:
        with self.engine.begin() as conn:
            self.record_in(conn, rec)

    def record_in(self, conn: Connection, rec: UsageRecord) -> None:
        """`record` inside the caller's transaction."""
        values = {name: getattr(rec, name) for name in _FIELDS}
        values["params"] = _json(rec.params) if rec.params else None
        values["day"] = time.strftime("%Y-%m-%d", time.gmtime(rec.created_at))
        _INSERT.run(conn, values)

    def totals(
        self, key_id: int | None = None, days: int | None = None, now: float | None = None
    ) -> list[dict[str, Any]]:
        """Per key and UTC day: requests, failures, images, tokens by bucket, cost, what the operator
        paid the channels, and the failed upstream attempts that may have been charged anyway."""
        u = usage_records.c
        query = (
            select(
                u.key_id,
                u.day,
                func.count().label("requests"),
                func.sum(case((u.status >= 400, 1), else_=0)).label("failed"),
                func.sum(u.images).label("images"),
                func.sum(u.text_in).label("text_in"),
                func.sum(u.image_in).label("image_in"),
                func.sum(u.image_out).label("image_out"),
                func.sum(u.cost_micros).label("cost_micros"),
                func.coalesce(func.sum(u.upstream_cost_micros), 0).label("upstream_cost_micros"),
                func.sum(u.maybe_billed).label("maybe_billed"),
            )
            .group_by(u.key_id, u.day)
            .order_by(u.day, u.key_id)
        )
        if key_id is not None:
            query = query.where(u.key_id == key_id)
        return self._rows(query, days, now, ("day",))

    def by_channel(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Per channel (None: local engines) and UTC day: requests, images, what keys were charged,
        what the channel cost the operator, and the margin between them (micro-dollars)."""
        u = usage_records.c
        charged = func.sum(u.cost_micros)
        paid = func.coalesce(func.sum(u.upstream_cost_micros), 0)
        query = (
            select(
                u.channel,
                u.day,
                func.count().label("requests"),
                func.sum(case((u.status >= 400, 1), else_=0)).label("failed"),
                func.sum(u.images).label("images"),
                charged.label("cost_micros"),
                paid.label("upstream_cost_micros"),
                (charged - paid).label("margin_micros"),
                func.sum(u.maybe_billed).label("maybe_billed"),
            )
            .group_by(u.channel, u.day)
            .order_by(u.day, u.channel)
        )
        return self._rows(query, days, now, ("day", "channel"))

    def by_model(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Per model and UTC day: requests, failures, images, what keys were charged and what the
        channels cost the operator (micro-dollars)."""
        u = usage_records.c
        query = (
            select(
                u.model,
                u.day,
                func.count().label("requests"),
                func.sum(case((u.status >= 400, 1), else_=0)).label("failed"),
                func.sum(u.images).label("images"),
                func.sum(u.cost_micros).label("cost_micros"),
                func.coalesce(func.sum(u.upstream_cost_micros), 0).label("upstream_cost_micros"),
            )
            .group_by(u.model, u.day)
            .order_by(u.day, u.model)
        )
        return self._rows(query, days, now, ("day", "model"))

    def errors(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Per UTC day, status and error code: how many requests failed so."""
        u = usage_records.c
        query = (
            select(u.day, u.status, u.error_code, func.count().label("requests"))
            .where(u.status >= 400)
            .group_by(u.day, u.status, u.error_code)
            .order_by(u.day, u.status, u.error_code)
        )
        return self._rows(query, days, now, ("day", "error_code"))

    def latency_histogram(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Per UTC day, the successful requests counted in latency buckets (`le_ms`: the bucket's
        upper bound, None above the last), which percentiles are read from: one grouped query
        whatever the number of requests, on SQLite as on PostgreSQL."""
        u = usage_records.c
        bucket = case(*[(u.latency_ms <= bound, bound) for bound in LATENCY_BUCKETS_MS], else_=None).label(
            "le_ms"
        )
        query = (
            select(u.day, bucket, func.count().label("requests"))
            .where(u.status < 400)
            .group_by(u.day, bucket)
            .order_by(u.day, bucket)
        )
        return self._rows(query, days, now, ("day", "le_ms"))

    def _rows(
        self, query: Any, days: int | None, now: float | None, keep: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """The rows of a grouped query over the last `days`, counts as ints, `keep` as they are."""
        if days is not None and now is not None:
            query = query.where(usage_records.c.created_at >= now - days * 86_400)
        with self.engine.connect() as conn:
            return [
                {k: (v if k in keep or v is None else int(v)) for k, v in row._mapping.items()}
                for row in conn.execute(query)
            ]

    def account(self, key_id: int) -> dict[str, int]:
        """A key's lifetime counts: requests, successful requests and images."""
        u = usage_records.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(u.images), 0)).where(u.key_id == key_id)
            ).one()
        return {"requests": int(row[0]), "images": int(row[1])}
