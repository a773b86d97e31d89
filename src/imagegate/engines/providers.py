"""The upstream provider kinds a channel can speak: `channels add --provider KIND` picks one;
`openai` (any OpenAI-compatible images API) is the default. Each kind is a `Provider`
(engines/catalog.py): its engine, public endpoint, options, and per model its capabilities and
list prices. A model missing from a provider's tables gets the provider's defaults: every size the
gateway accepts and no operator price (the operator can set `--price`).
"""

from __future__ import annotations

from dataclasses import replace

import aiohttp

from imagegate.engines import azure
from imagegate.engines.base import Capabilities, SizeRule
from imagegate.engines.catalog import Provider
from imagegate.engines.fetch import Fetcher
from imagegate.engines.gemini import GEMINI
from imagegate.engines.seedream import SEEDREAM
from imagegate.engines.upstream import UpstreamConfig, UpstreamEngine
from imagegate.engines.vertex import VERTEX
from imagegate.engines.xai import XAI
from imagegate.pricing import ModelPrice

# OpenAI's image models (https://platform.openai.com/docs/guides/image-generation, read 2026-12-03).
GPT_IMAGE_1 = Capabilities(sizes=("1024x1024", "1536x1024", "1024x1536"))
GPT_IMAGE_2 = Capabilities(size_rule=SizeRule(), alpha=False)
OPENAI_MODELS = {
    "gpt-image-1": GPT_IMAGE_1,  # gpt-image-1, -mini, 1.5
    "gpt-image-2": GPT_IMAGE_2,
    "chatgpt-image": GPT_IMAGE_1,
}
# https://platform.openai.com/docs/pricing (read 2026-12-03), micro-dollars per 1M tokens.
OPENAI_PRICES = {
    "gpt-image-1": ModelPrice(
        text_in_per_1m=5_000_000, image_in_per_1m=10_000_000, image_out_per_1m=40_000_000
    ),
    "gpt-image-1-mini": ModelPrice(
        text_in_per_1m=2_000_000, image_in_per_1m=2_500_000, image_out_per_1m=8_000_000
    ),
    "gpt-image-1.5": ModelPrice(
        text_in_per_1m=5_000_000, image_in_per_1m=8_000_000, image_out_per_1m=32_000_000
    ),
}

OPENAI = Provider(
    kind="openai",
    engine=UpstreamEngine,
    base_url="https://api.openai.com/v1",
    describe="OpenAI, or any server speaking OpenAI's images API (the request is relayed as sent)",
    models=OPENAI_MODELS,
    prices=OPENAI_PRICES,
    prices_read="platform.openai.com/docs/pricing, 2026-12-03",
)

# OpenAI's models on Azure write PNG and JPEG, not WebP (engines/azure.py). Priced at OpenAI's list
# prices, which Azure's Global Standard meters are taken to match (*unverified*: Azure's pricing page
# could not be read; an operator with other meters sets --price).
AZURE = Provider(
    kind="azure",
    engine=azure.AzureEngine,
    base_url="",  # each resource has its own: https://{resource}.openai.azure.com
    describe="Azure OpenAI: a resource's deployments of OpenAI's models (options: deployment, api_version)",
    models={name: replace(caps, formats=("png", "jpeg")) for name, caps in OPENAI_MODELS.items()},
    prices=OPENAI_PRICES,
    prices_read="OpenAI's list prices (platform.openai.com/docs/pricing, 2026-12-03), unverified for Azure",
    options=azure.OPTIONS,
)

# Every kind, by the name `--provider` takes.
PROVIDERS: dict[str, Provider] = {p.kind: p for p in (OPENAI, AZURE, GEMINI, VERTEX, SEEDREAM, XAI)}


def engine_for(config: UpstreamConfig, session: aiohttp.ClientSession, fetcher: Fetcher) -> UpstreamEngine:
    """The engine of a channel (its provider kind's adapter)."""
    return PROVIDERS[config.provider].engine(config, session, fetcher)
