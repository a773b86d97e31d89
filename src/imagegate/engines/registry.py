"""Which engines serve which model names, in what order. Rebuilt whenever channels change.

A model can be served by several routes: upstream channels (priority and weight from the
channel) and local engines. The placeholder engine serves the configured model names that
no channel lists, at the lowest priority, so a fresh install works and a configured channel
replaces it for the models it serves; for the models in `local_fallback_models` it stays, as
the last route, tried when every channel has failed or is cooling down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from imagegate.config import Settings
from imagegate.engines.base import Engine
from imagegate.engines.fetch import provider_fetcher
from imagegate.engines.placeholder import PlaceholderEngine
from imagegate.engines.upstream import UpstreamEngine
from imagegate.errors import ModelNotFound
from imagegate.storage.channels import Channel

# Local engine name -> factory. Third-party engines register here as they land.
FACTORIES: dict[str, Callable[[Settings], Engine]] = {
    "placeholder": lambda _settings: PlaceholderEngine(),
}
LOCAL_PRIORITY = -1_000_000  # below any channel's priority


@dataclass(frozen=True, slots=True)
class Route:
    model: str
    engine: Engine
    priority: int = LOCAL_PRIORITY
    weight: int = 1
    channel: Channel | None = None  # None for local engines

    @property
    def breaker_name(self) -> str | None:
        return f"channel:{self.channel.name}" if self.channel else None


class EngineRegistry:
    def __init__(self) -> None:
        self._routes: dict[str, list[Route]] = {}
        self._models: list[str] = []

    def add(self, route: Route) -> None:
        self._routes.setdefault(route.model, []).append(route)
        self.know(route.model)

    def know(self, model: str) -> None:
        """A model name clients may ask for (listed even while none of its routes is usable)."""
        if model not in self._models:
            self._models.append(model)

    def routes_for(self, model: str) -> list[Route]:
        if model not in self._models:
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        return list(self._routes.get(model, []))

    def engine_for(self, model: str) -> Engine:
        """The engine shown for a model in /v1/models: its highest-priority route's."""
        routes = sorted(self.routes_for(model), key=lambda r: -r.priority)
        if not routes:
            raise ModelNotFound(f"No enabled channel serves the model '{model}'.", param="model")
        return routes[0].engine

    def routes(self) -> list[Route]:
        return [r for routes in self._routes.values() for r in routes]

    def models(self) -> list[str]:
        return list(self._models)


def build_registry(settings: Settings, channels: Iterable[Channel] = (),
                   session: aiohttp.ClientSession | None = None) -> EngineRegistry:
    registry = EngineRegistry()
    channels = list(channels)
    fetcher = provider_fetcher(settings)
    for channel in channels:
        for model in channel.models:
            registry.know(model)
            if channel.enabled and session is not None:
                engine = UpstreamEngine(channel, session, fetcher)
                registry.add(Route(model, engine, channel.priority, max(1, channel.weight), channel))
    served_by_channels = {m for c in channels for m in c.models}
    placeholder = FACTORIES["placeholder"](settings)
    fallback = set(settings.local_fallback_models)
    for model in dict.fromkeys([*settings.models, *settings.local_fallback_models]):
        if model not in served_by_channels or model in fallback:
            registry.add(Route(model, placeholder))
    return registry
