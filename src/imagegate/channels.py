"""Upstream channel administration shared by the CLI and /admin/channels, plus the automatic
disable/re-enable of channels whose provider rejects their key or runs out of balance.

A channel disabled automatically carries a reason starting with "auto:"; the probe re-enables
only those. A channel the operator disabled stays off. A rejected key is re-tried with
GET {base_url}/models, which costs nothing. An account out of balance is re-tried with one real
low-quality generation, at most every `channel_balance_probe_s` per channel (over all replicas:
the time is claimed in the channel's row): a provider answers
GET /models with 200 for a key whose account cannot pay, so only a paid request tells. A
successful probe costs the operator one low-quality image.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

import aiohttp
import anyio.to_thread
from pydantic import ValidationError

from imagegate.domain import ImageJob
from imagegate.engines.base import CAPABILITY_KEYS, Capabilities
from imagegate.engines.fetch import Fetcher
from imagegate.engines.providers import PROVIDERS, engine_for
from imagegate.engines.registry import ChannelRoutes
from imagegate.engines.upstream import OUT_OF_BALANCE_REASON, UpstreamConfig, UpstreamEngine
from imagegate.errors import Conflict, InvalidValue, NotFound, UpstreamError
from imagegate.pricing import ModelPrice
from imagegate.storage import bounds
from imagegate.storage.channels import Channel, ChannelRepo, DuplicateChannel

log = logging.getLogger("imagegate.channels")
AUTO = "auto: "


@dataclass(frozen=True, slots=True)
class Channels:
    repo: ChannelRepo

    def add(
        self, name: str, base_url: str | None, api_key: str, models: list[str], **fields: Any
    ) -> dict[str, Any]:
        kind = fields.get("provider") or "openai"
        if not isinstance(kind, str) or kind not in PROVIDERS:
            raise InvalidValue(
                f"Unknown provider {kind!r}. Supported: {', '.join(PROVIDERS)}.", param="provider"
            )
        fields["provider"] = kind
        base_url = base_url or PROVIDERS[kind].base_url
        if not base_url:
            raise InvalidValue(
                f"The {kind} provider has no public endpoint: give the channel its base_url "
                "(--base-url), e.g. https://RESOURCE.openai.azure.com.",
                param="base_url",
            )
        _check(name=name, base_url=base_url, models=models, **fields)
        _check_options(kind, fields.get("options") or {}, adding=True)
        try:
            return self.repo.add(name, base_url, api_key, models, **_clean(fields)).public()
        except DuplicateChannel:
            raise Conflict(f"A channel named '{name}' already exists.", code="channel_exists") from None

    def update(self, ident: str, **fields: Any) -> dict[str, Any]:
        channel = self._get(ident)
        _check(**fields)
        if fields.get("options") is not None:
            _check_options(channel.provider, fields["options"], adding=False)
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

    def disable_named(self, name: str, reason: str) -> None:
        """Disable the channel `name` (the router reports channels by name)."""
        channel = self.repo.get(name)
        if channel is not None:
            self.disable(channel, reason)

    def disable(self, channel: Channel, reason: str) -> None:
        log.warning("channel %s disabled: %s", channel.name, reason)
        self.repo.update(str(channel.id), enabled=False, disabled_reason=AUTO + reason)

    def _get(self, ident: str) -> Channel:
        channel = self.repo.get(ident)
        if channel is None:
            raise NotFound(f"No channel '{ident}'.", code="channel_not_found")
        return channel


class Prober:
    """Re-enables auto-disabled channels whose provider serves again (see the module docstring)."""

    PROMPT = "a small white circle on a grey background"

    def __init__(
        self, repo: ChannelRepo, session: aiohttp.ClientSession, balance_probe_s: float, fetcher: Fetcher
    ) -> None:
        self.repo = repo
        self.session = session
        self.fetcher = fetcher
        self.balance_probe_s = balance_probe_s

    async def run(self) -> list[str]:
        """Probe each auto-disabled channel that is due; the names of those re-enabled."""
        revived = []
        for channel in await anyio.to_thread.run_sync(self.repo.list):  # never block the event loop
            reason = channel.disabled_reason or ""
            if channel.enabled or not reason.startswith(AUTO):
                continue
            if reason == AUTO + OUT_OF_BALANCE_REASON:
                answers = await self._generates(channel)
            else:
                answers = await self._lists_models(channel)
            if answers:
                await anyio.to_thread.run_sync(
                    partial(self.repo.update, str(channel.id), enabled=True, disabled_reason=None)
                )
                log.info("channel %s answers again: re-enabled", channel.name)
                revived.append(channel.name)
        return revived

    async def _lists_models(self, channel: Channel) -> bool:
        url, headers = self._engine(channel).key_check()
        try:
            async with self.session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _generates(self, channel: Channel) -> bool:
        if self.balance_probe_s <= 0:
            return False
        every_s = self.balance_probe_s
        if not await anyio.to_thread.run_sync(self.repo.claim_balance_probe, channel.id, every_s):
            return False  # probed less than balance_probe_s ago, by this replica or another
        try:
            await self._one_image(channel)
        except UpstreamError as exc:
            log.info("channel %s: balance probe refused (%s)", channel.name, exc.message)
            return False
        except Exception:  # one odd answer must not end the round for the other channels
            log.exception("channel %s: balance probe failed", channel.name)
            return False
        log.info(
            "channel %s: balance probe served one low-quality image (a cost to the operator)", channel.name
        )
        return True

    async def try_once(self, channel: Channel) -> str | None:
        """One cheap request (a low-quality image, at the operator's cost), asked for by the
        operator (the console's "test"): None when the channel served it, else why not."""
        try:
            await self._one_image(channel)
        except UpstreamError as exc:
            return exc.message
        except Exception as exc:  # the operator reads what went wrong, whatever it was
            log.info("channel %s: test request failed", channel.name, exc_info=True)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _one_image(self, channel: Channel) -> None:
        """One low-quality image from the channel's first model, at the operator's cost; raises
        what the engine raises."""
        params = {"prompt": self.PROMPT, "quality": "low", "size": "1024x1024", "n": 1}
        job = ImageJob(
            model=channel.models[0], prompt=self.PROMPT, quality="low", passthrough=MappingProxyType(params)
        )
        async for _ in self._engine(channel).run(job):
            pass

    def _engine(self, channel: Channel) -> UpstreamEngine:
        return engine_for(upstream_config(channel), self.session, self.fetcher)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    nullable = ("model_map", "prices", "disabled_reason", "options", "capabilities")
    out = {k: v for k, v in fields.items() if v is not None or k in nullable}
    if out.get("enabled") is True:
        out.setdefault("disabled_reason", None)
    return out


def _check(**fields: Any) -> None:
    name = fields.get("name")
    if name is not None and (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > bounds.CHANNEL_NAME
        or not bounds.storable(name)
    ):
        raise InvalidValue(
            f"name must be a non-empty text of at most {bounds.CHANNEL_NAME} characters.", param="name"
        )
    base_url = fields.get("base_url")
    if base_url is not None and (
        not str(base_url).startswith(("http://", "https://"))
        or len(str(base_url)) > bounds.BASE_URL
        or not bounds.storable(str(base_url))
    ):
        raise InvalidValue(
            f"base_url must be an http(s) URL of at most {bounds.BASE_URL} characters, e.g. "
            "https://api.example.com/v1.",
            param="base_url",
        )
    models = fields.get("models")
    if models is not None and (
        not models or not all(isinstance(m, str) and m and len(m) <= bounds.MODEL_NAME for m in models)
    ):
        raise InvalidValue(
            f"models must be a non-empty list of model names (at most {bounds.MODEL_NAME} characters each).",
            param="models",
        )
    for field, lo, hi in (
        ("priority", -1_000_000, 1_000_000),
        ("weight", 1, bounds.INT32_MAX),
        ("timeout_s", 1, 86_400),
    ):
        value = fields.get(field)
        if value is not None and not lo <= value <= hi:
            raise InvalidValue(f"'{field}' must be from {lo} to {hi}.", param=field)
    capabilities = fields.get("capabilities")
    if capabilities is not None:
        _check_capabilities(capabilities)
    prices = fields.get("prices")
    if prices is not None:
        try:
            ModelPrice.model_validate(prices)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidValue(
                f"Invalid 'prices' ({where}): {first['msg']}. Expected micro-dollars: "
                "text_in_per_1m, image_in_per_1m, image_out_per_1m and optionally per_image.",
                param="prices",
            ) from None


def _check_options(kind: str, options: Any, *, adding: bool) -> None:
    provider = PROVIDERS[kind]
    if not isinstance(options, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and bounds.storable(k + v) for k, v in options.items()
    ):
        raise InvalidValue("options must be an object of text values.", param="options")
    unknown = sorted(set(options) - set(provider.options))
    if unknown:
        takes = ", ".join(provider.options) or "none"
        raise InvalidValue(
            f"The {kind} provider takes no option {unknown[0]!r} (it takes: {takes}).", param="options"
        )
    missing = [name for name in provider.required if adding and not options.get(name)]
    if missing:
        raise InvalidValue(
            f"The {kind} provider needs the option {missing[0]!r} (--option {missing[0]}=...).",
            param="options",
        )
    if len(json.dumps(options)) > bounds.CHANNEL_OPTIONS:
        raise InvalidValue(f"options may have at most {bounds.CHANNEL_OPTIONS} characters.", param="options")


def _check_capabilities(overrides: Any) -> None:
    if not isinstance(overrides, dict) or len(json.dumps(overrides)) > bounds.CHANNEL_OPTIONS:
        raise InvalidValue("capabilities must be an object.", param="capabilities")
    try:
        Capabilities().with_overrides(overrides)
    except ValueError as exc:
        known = ", ".join(sorted(CAPABILITY_KEYS))
        raise InvalidValue(f"Invalid capabilities: {exc} (known: {known}).", param="capabilities") from None


def upstream_config(channel: Channel) -> UpstreamConfig:
    return UpstreamConfig(
        name=channel.name,
        base_url=channel.base_url,
        api_key=channel.api_key,
        model_map=dict(channel.model_map),
        timeout_s=channel.timeout_s,
        provider=channel.provider,
        options=dict(channel.options),
    )


def channel_routes(channel: Channel) -> ChannelRoutes:
    """A stored channel as the engine registry takes it."""
    return ChannelRoutes(
        config=upstream_config(channel),
        models=channel.models,
        priority=channel.priority,
        weight=channel.weight,
        prices=channel.prices,
        usable=channel.usable and channel.provider in PROVIDERS,
        capabilities=channel.capabilities,
    )
