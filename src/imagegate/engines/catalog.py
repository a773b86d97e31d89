"""What an upstream provider kind is, as data (engines/providers.py lists them): its engine
(the adapter from one ImageJob to the provider's wire and back), its public endpoint, the
channel options it takes, and per model what it renders (Capabilities) and what it costs the
operator (list prices)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from imagegate.engines.base import Capabilities
from imagegate.engines.fetch import Fetcher
from imagegate.engines.upstream import UpstreamConfig, UpstreamEngine
from imagegate.pricing import ModelPrice

# Every adapter is an UpstreamEngine: it inherits the deadlines and failure classification.
EngineFactory = Callable[[UpstreamConfig, aiohttp.ClientSession, Fetcher], UpstreamEngine]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Provider:
    kind: str
    engine: EngineFactory
    # The public endpoint, so an operator needs only the key; "" where there is none (each Azure
    # resource has its own host), and a channel must then give its base_url.
    base_url: str
    describe: str
    # Capabilities and operator list prices by model name; the longest matching prefix wins
    # ("gpt-image-1" covers "gpt-image-1-mini" unless that has its own row).
    models: Mapping[str, Capabilities] = field(default_factory=dict)
    default: Capabilities = field(default_factory=Capabilities)
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    prices_read: str = ""  # when the list prices were read, and where
    options: tuple[str, ...] = ()  # channel options it takes (Azure's deployment, ...)
    required: tuple[str, ...] = ()  # of which these must be set

    def capabilities(self, model: str) -> Capabilities:
        return longest_prefix(self.models, model) or self.default

    def price(self, model: str) -> ModelPrice | None:
        return longest_prefix(self.prices, model)


def longest_prefix(table: Mapping[str, T], model: str) -> T | None:
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name)]
    return table[max(matches, key=len)] if matches else None
