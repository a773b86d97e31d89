"""Upstream channels: providers of any kind (engines/providers.py), with their keys sealed at rest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, false, insert, select, update
from sqlalchemy.exc import IntegrityError

from imagegate.clock import Clock
from imagegate.pricing import ModelPrice
from imagegate.storage.bounds import as_id, storable
from imagegate.storage.secretbox import SecretBox
from imagegate.storage.tables import channels

UNSEALABLE = "its key cannot be unsealed with this gateway's secret key"
EDITABLE = (
    "base_url",
    "api_key",
    "models",
    "model_map",
    "priority",
    "weight",
    "timeout_s",
    "prices",
    "enabled",
    "disabled_reason",
    "options",
    "capabilities",
)


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    name: str
    base_url: str
    api_key: str = field(repr=False)  # plaintext in memory only; never logged or returned
    models: tuple[str, ...] = ()
    model_map: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    weight: int = 1
    timeout_s: float = 120.0
    prices: ModelPrice | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    provider: str = "openai"  # the wire it speaks: engines/providers.py
    options: dict[str, Any] = field(default_factory=dict)  # the provider's settings
    capabilities: dict[str, Any] = field(default_factory=dict)  # the operator's overrides
    # Why the channel cannot be used at all (its key was sealed with another secret key): it is
    # listed with this error and serves nothing until the key is set again.
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.enabled and self.error is None

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)

    def public(self) -> dict[str, Any]:
        """What the admin API and CLI show: everything but the key (only its last 4 chars)."""
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "base_url": self.base_url,
            "api_key": f"…{self.api_key[-4:]}" if len(self.api_key) > 8 else "…",
            "models": list(self.models),
            "model_map": self.model_map,
            "priority": self.priority,
            "weight": self.weight,
            "timeout_s": self.timeout_s,
            "prices": self.prices.model_dump() if self.prices else None,
            "options": self.options,
            "capabilities": self.capabilities,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "error": self.error,
        }


class DuplicateChannel(Exception):
    pass


class ChannelRepo:
    def __init__(self, engine: Engine, clock: Clock, box: SecretBox) -> None:
        self.engine = engine
        self.clock = clock
        self.box = box

    def add(self, name: str, base_url: str, api_key: str, models: list[str], **fields: Any) -> Channel:
        now = self.clock.now()
        values = self._encode({"base_url": base_url, "api_key": api_key, "models": models, **fields})
        try:
            with self.engine.begin() as conn:
                cid = conn.execute(
                    insert(channels).values(name=name, created_at=now, updated_at=now, **values)
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as exc:
            raise DuplicateChannel(name) from exc
        found = self.get(str(cid))
        assert found is not None
        return found

    def update(self, ident: str, **fields: Any) -> Channel | None:
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        with self.engine.begin() as conn:
            conn.execute(
                update(channels)
                .where(_where(ident))
                .values(updated_at=self.clock.now(), **self._encode(fields))
            )
        return self.get(ident)

    def remove(self, ident: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(channels).where(_where(ident))).rowcount)

    def get(self, ident: str) -> Channel | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(channels).where(_where(ident))).first()
        return self._channel(row) if row is not None else None

    def list(self) -> list[Channel]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(channels).order_by(channels.c.priority.desc(), channels.c.id)).all()
        return [self._channel(r) for r in rows]

    def claim_balance_probe(self, channel_id: int, every_s: float) -> bool:
        """Whether this replica may probe the channel's balance now: true for one replica at most
        every `every_s` (a conditional UPDATE, so replicas sharing the database agree)."""
        now = self.clock.now()
        c = channels.c
        due = (c.balance_probed_at.is_(None)) | (c.balance_probed_at <= now - every_s)
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(channels).where(c.id == channel_id, due).values(balance_probed_at=now)
            ).rowcount
        return bool(claimed)

    def _encode(self, fields: dict[str, Any]) -> dict[str, Any]:
        out = dict(fields)
        if "api_key" in out:
            out["api_key_sealed"] = self.box.seal(out.pop("api_key"))
        if "models" in out:
            out["models"] = json.dumps(list(out["models"]))
        for name in ("model_map", "options", "capabilities"):
            if name in out:
                out[name] = json.dumps(out[name]) if out[name] else None
        if "prices" in out:
            prices = out["prices"]
            out["prices"] = None if prices is None else ModelPrice.model_validate(prices).model_dump_json()
        if "enabled" in out:
            out["enabled"] = 1 if out["enabled"] else 0
        return out

    def _channel(self, row: Any) -> Channel:
        r = row._mapping
        error = None
        try:
            api_key = self.box.open(r["api_key_sealed"])
        except Exception:  # sealed with another secret key (or none here): listed, never used
            api_key = ""
            error = (
                UNSEALABLE + " (set the secret key the other replicas use, IMAGEGATE_SECRET_KEY, or the "
                "channel's key again: channels update --api-key)"
            )
        return Channel(
            id=r["id"],
            name=r["name"],
            base_url=r["base_url"],
            api_key=api_key,
            error=error,
            models=tuple(json.loads(r["models"])),
            model_map=json.loads(r["model_map"] or "{}"),
            priority=r["priority"],
            weight=r["weight"],
            timeout_s=r["timeout_s"],
            prices=ModelPrice.model_validate_json(r["prices"]) if r["prices"] else None,
            enabled=bool(r["enabled"]),
            disabled_reason=r["disabled_reason"],
            provider=r["provider"],
            options=json.loads(r["options"] or "{}"),
            capabilities=json.loads(r["capabilities"] or "{}"),
        )


def _where(ident: str):  # type: ignore[no-untyped-def]
    if not storable(ident):
        return false()  # no channel is named so (and PostgreSQL refuses the comparison)
    channel_id = as_id(ident)
    return channels.c.id == channel_id if channel_id is not None else channels.c.name == ident
