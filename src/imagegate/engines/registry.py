"""Which engines serve which model names, in what order. Rebuilt whenever channels change.

A model can be served by several routes: upstream channels (priority and weight from the
channel) and local engines. The placeholder engine serves the configured model names that
no channel lists, at the lowest priority, so a fresh install works and a configured channel
replaces it for the models it serves; for the models in `local_fallback_models` it stays, as
the last route, tried when every channel has failed or is cooling down. A channel that cannot
be used (its key cannot be unsealed) keeps its models known and routed nowhere: they answer 503,
never the placeholder's art in its place.

Local engines are registered by kind in `KINDS`; `local_engines` (settings) names the models each
kind serves. Third-party engines come from the entry-point group `imagegate.engines` (a factory
`(Settings) -> Engine`), loaded only when their entry-point name is in `engine_plugins`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import aiohttp

from imagegate.config import Settings
from imagegate.engines.adapt import Adapted
from imagegate.engines.base import Capabilities, Engine
from imagegate.engines.fetch import provider_fetcher
from imagegate.engines.moderation import Moderator
from imagegate.engines.placeholder import PlaceholderEngine
from imagegate.engines.providers import PROVIDERS
from imagegate.engines.upstream import UpstreamConfig
from imagegate.errors import ModelNotFound
from imagegate.pricing import ModelPrice

log = logging.getLogger("imagegate.engines")
PLUGIN_GROUP = "imagegate.engines"
Factory = Callable[[Settings], Engine]
# Local engine kinds, by name. Third-party kinds join from the entry-point group.
KINDS: dict[str, Factory] = {
    "placeholder": lambda _settings: PlaceholderEngine(),
}
LOCAL_PRIORITY = -1_000_000  # below any channel's priority


@dataclass(frozen=True, slots=True)
class ChannelRoutes:
    """An upstream channel as the registry needs it (channels.py builds it from the stored row)."""

    config: UpstreamConfig
    models: tuple[str, ...]
    priority: int = 0
    weight: int = 1
    prices: ModelPrice | None = None  # what the operator pays the provider (else its list price)
    usable: bool = True  # enabled, its key could be unsealed and its provider kind is known
    capabilities: Mapping[str, Any] = field(default_factory=dict)  # the operator's overrides


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a model: what the flow needs, never a storage row."""

    model: str
    engine: Engine
    priority: int = LOCAL_PRIORITY
    weight: int = 1
    channel: str | None = None  # the upstream channel's name; None for a local engine
    prices: ModelPrice | None = None  # what the operator pays per token or image, when known
    capabilities: Capabilities = field(default_factory=Capabilities)

    @property
    def breaker_name(self) -> str | None:
        return f"channel:{self.channel}" if self.channel else None


class EngineRegistry:
    def __init__(self) -> None:
        self._routes: dict[str, list[Route]] = {}
        self._models: list[str] = []
        self.moderator: Moderator | None = None  # the configured moderation channel's endpoint

    def add(self, route: Route) -> None:
        self._routes.setdefault(route.model, []).append(route)
        self.know(route.model)

    def know(self, model: str) -> None:
        """A model name clients may ask for (listed even while none of its routes is usable)."""
        if model not in self._models:
            self._models.append(model)

    def knows(self, model: str) -> bool:
        """Whether clients may ask for `model` (listed, even with no usable route)."""
        return model in self._models

    def routes_for(self, model: str) -> list[Route]:
        if not self.knows(model):
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        return list(self._routes.get(model, []))

    def first_route(self, model: str) -> Route:
        """The route shown for a model in /v1/models: its highest-priority one."""
        routes = sorted(self.routes_for(model), key=lambda r: -r.priority)
        if not routes:
            raise ModelNotFound(f"No enabled channel serves the model '{model}'.", param="model")
        return routes[0]

    def routes(self) -> list[Route]:
        return [r for routes in self._routes.values() for r in routes]

    def models(self) -> list[str]:
        return list(self._models)


def engine_kinds(settings: Settings) -> dict[str, Factory]:
    """The built-in kinds and the allow-listed plugins (`engine_plugins`) found installed."""
    kinds = dict(KINDS)
    wanted = set(settings.engine_plugins)
    if not wanted:
        return kinds  # reading the installed packages' entry points costs milliseconds
    for point in entry_points(group=PLUGIN_GROUP):
        if point.name not in wanted:
            continue  # installed but not allowed: never imported
        kinds[point.name] = point.load()
        wanted.discard(point.name)
    for name in sorted(wanted):
        log.error(
            "engine plugin %r is allowed (engine_plugins) but no package provides it in the "
            "entry-point group %s",
            name,
            PLUGIN_GROUP,
        )
    return kinds


def build_registry(
    settings: Settings, channels: Iterable[ChannelRoutes] = (), session: aiohttp.ClientSession | None = None
) -> EngineRegistry:
    registry = EngineRegistry()
    channels = list(channels)
    fetcher = provider_fetcher(settings)
    for channel in channels:
        if channel.config.name == settings.moderation_channel and channel.usable and session is not None:
            registry.moderator = Moderator(channel.config, session)
        for model in channel.models:
            registry.know(model)
            if channel.usable and session is not None:
                provider = PROVIDERS[channel.config.provider]
                upstream = provider.engine(channel.config, session, fetcher)
                native = channel.config.upstream_model(model)
                caps = provider.capabilities(native).with_overrides(channel.capabilities)
                registry.add(
                    Route(
                        model,
                        Adapted(upstream, caps),
                        channel.priority,
                        max(1, channel.weight),
                        channel.config.name,
                        channel.prices or provider.price(native),
                        caps,
                    )
                )
    kinds = engine_kinds(settings)
    local: dict[str, Engine] = {}

    def local_engine(kind: str) -> Engine:
        if kind not in local:
            local[kind] = kinds[kind](settings)
        return local[kind]

    for kind, models in settings.local_engines.items():
        if kind not in kinds:
            log.error("local_engines names the engine kind %r, which is not registered", kind)
            continue
        for model in models:
            made = local_engine(kind)
            registry.add(Route(model, Adapted(made, made.capabilities), capabilities=made.capabilities))
    served = {m for c in channels for m in c.models} | {r.model for r in registry.routes()}
    fallback = set(settings.local_fallback_models)
    for model in dict.fromkeys([*settings.models, *settings.local_fallback_models]):
        if model not in served or model in fallback:
            placeholder = local_engine("placeholder")
            registry.add(Route(model, placeholder, capabilities=placeholder.capabilities))
    return registry
