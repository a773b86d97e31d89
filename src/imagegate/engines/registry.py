"""Which engine serves which model name. Built once from Settings in the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from imagegate.config import Settings
from imagegate.engines.base import Engine
from imagegate.engines.placeholder import PlaceholderEngine
from imagegate.errors import ModelNotFound

# Engine name -> factory. Upstream and diffusers engines register here as they land.
FACTORIES: dict[str, Callable[[Settings], Engine]] = {
    "placeholder": lambda _settings: PlaceholderEngine(),
}


@dataclass(frozen=True, slots=True)
class Route:
    model: str
    engine: Engine


class EngineRegistry:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def add(self, model: str, engine: Engine) -> None:
        self._routes[model] = Route(model, engine)

    def engine_for(self, model: str) -> Engine:
        route = self._routes.get(model)
        if route is None:
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        return route.engine

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def models(self) -> list[str]:
        return list(self._routes)


def build_registry(settings: Settings) -> EngineRegistry:
    """A fresh install serves every configured model name with the placeholder engine."""
    registry = EngineRegistry()
    placeholder = FACTORIES["placeholder"](settings)
    for model in settings.models:
        registry.add(model, placeholder)
    return registry
