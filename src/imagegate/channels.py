"""Upstream channel administration shared by the CLI and /admin/channels, plus the automatic
disable/re-enable of channels whose provider rejects their key or runs out of balance.

A channel disabled automatically carries a reason starting with "auto:"; the probe re-enables
only those (GET {base_url}/models answering 200). A channel the operator disabled stays off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx
from pydantic import ValidationError

from imagegate.errors import Conflict, InvalidValue, NotFound
from imagegate.pricing import ModelPrice
from imagegate.storage.channels import Channel, ChannelRepo, DuplicateChannel

log = logging.getLogger("imagegate.channels")
AUTO = "auto: "


@dataclass(frozen=True, slots=True)
class Channels:
    repo: ChannelRepo

    def add(self, name: str, base_url: str, api_key: str, models: list[str], **fields: Any) -> dict[str, Any]:
        _check(base_url=base_url, models=models, **fields)
        try:
            return self.repo.add(name, base_url, api_key, models, **_clean(fields)).public()
        except DuplicateChannel:
            raise Conflict(f"A channel named '{name}' already exists.", code="channel_exists") from None

    def update(self, ident: str, **fields: Any) -> dict[str, Any]:
        self._get(ident)
        _check(**fields)
        updated = self.repo.update(ident, **_clean(fields))
        assert updated is not None
        return updated.public()

    def remove(self, ident: str) -> None:
        if not self.repo.remove(ident):
            raise NotFound(f"No channel '{ident}'.", code="channel_not_found")

    def list(self) -> list[dict[str, Any]]:
        return [c.public() for c in self.repo.list()]

    def get(self, ident: str) -> dict[str, Any]:
        return self._get(ident).public()

    def disable(self, channel: Channel, reason: str) -> None:
        log.warning("channel %s disabled: %s", channel.name, reason)
        self.repo.update(str(channel.id), enabled=False, disabled_reason=AUTO + reason)

    async def probe(self, http: httpx.AsyncClient) -> list[str]:
        """Try each auto-disabled channel; re-enable those that answer. Returns their names."""
        revived = []
        for channel in await anyio.to_thread.run_sync(self.repo.list):  # never block the event loop
            if channel.enabled or not (channel.disabled_reason or "").startswith(AUTO):
                continue
            try:
                resp = await http.get(channel.base_url.rstrip("/") + "/models", timeout=10,
                                      headers={"Authorization": f"Bearer {channel.api_key}"})
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                await anyio.to_thread.run_sync(
                    lambda c=channel: self.repo.update(str(c.id), enabled=True, disabled_reason=None))
                log.info("channel %s answers again: re-enabled", channel.name)
                revived.append(channel.name)
        return revived

    def _get(self, ident: str) -> Channel:
        channel = self.repo.get(ident)
        if channel is None:
            raise NotFound(f"No channel '{ident}'.", code="channel_not_found")
        return channel


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    nullable = ("model_map", "prices", "disabled_reason")
    out = {k: v for k, v in fields.items() if v is not None or k in nullable}
    if out.get("enabled") is True:
        out.setdefault("disabled_reason", None)
    return out


def _check(**fields: Any) -> None:
    base_url = fields.get("base_url")
    if base_url is not None and not str(base_url).startswith(("http://", "https://")):
        raise InvalidValue("base_url must be an http(s) URL, e.g. https://api.example.com/v1.",
                           param="base_url")
    models = fields.get("models")
    if models is not None and (not models or not all(isinstance(m, str) and m for m in models)):
        raise InvalidValue("models must be a non-empty list of model names.", param="models")
    for name, lo in (("priority", -1_000_000), ("weight", 1), ("timeout_s", 1)):
        value = fields.get(name)
        if value is not None and value < lo:
            raise InvalidValue(f"'{name}' must be at least {lo}.", param=name)
    prices = fields.get("prices")
    if prices is not None:
        try:
            ModelPrice.model_validate(prices)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidValue(f"Invalid 'prices' ({where}): {first['msg']}. Expected micro-dollars: "
                               "text_in_per_1m, image_in_per_1m, image_out_per_1m and optionally per_image.",
                               param="prices") from None
