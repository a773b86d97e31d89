"""Client-side prices: what a request will cost before it is sent, and what it cost after.

Money is integer micro-dollars (µ$) everywhere inside; dollars appear only at the edge
(`estimate_cost`, `.cost_usd`). The default table is OpenAI's published gpt-image-1 price
($5 text in, $10 image in, $40 image out per 1M tokens), used for every model the table does
not name. Connected to imagegate, the client reads the server's own table from
`GET /v1/pricing` (`PriceTable.from_json`) and falls back to this one on any error.

Token math (OpenAI's, as the server applies it): output image tokens per image are
(ceil(b*W/1024) + 1) * ceil(b*H/1024) with b = 16/32/64 for low/medium/high, which gives the
published 272/408/400, 1056/1584/1568 and 4160/6240/6208; each streamed partial image adds 100.
Input images cost 65 + 129 per 512-px tile. Text tokens come from an o200k tokenizer when one
is installed (`bpe-openai`), else from a conservative character estimate.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

MICRO = 1_000_000
DEFAULT_MODEL = "gpt-image-1"
PARTIAL_IMAGE_TOKENS = 100
_OUTPUT_BASE = MappingProxyType({"low": 16, "medium": 32, "high": 64})
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def micro_to_usd(micro: int) -> float:
    """Micro-dollars to dollars (for display only)."""
    return micro / MICRO


def parse_size(size: str | None) -> tuple[int, int]:
    """'WIDTHxHEIGHT' as ints; 'auto' or None counts as 1024x1024."""
    if not size or size == "auto":
        return 1024, 1024
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", size)
    if not match:
        raise ValueError(f"size must be 'auto' or 'WIDTHxHEIGHT', got {size!r}")
    return int(match.group(1)), int(match.group(2))


def resolve_quality(quality: str | None) -> str:
    """The quality a server bills: 'auto' (or none) is 'medium'."""
    if not quality or quality == "auto":
        return "medium"
    if quality not in _OUTPUT_BASE:
        raise ValueError(f"quality must be low, medium, high or auto, got {quality!r}")
    return quality


def output_image_tokens(quality: str, width: int, height: int) -> int:
    """Output image tokens of one width x height image at `quality` (low/medium/high/auto)."""
    base = _OUTPUT_BASE[resolve_quality(quality)]
    return (math.ceil(base * width / 1024) + 1) * math.ceil(base * height / 1024)


def input_image_tokens(width: int, height: int, *, high_fidelity: bool = False) -> int:
    """Input image tokens of one reference image: fit in 2048², short side to 512, 65 + 129/tile."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 512:
        w, h = w * 512 / min(w, h), h * 512 / min(w, h)
    tiles = math.ceil(round(w) / 512) * math.ceil(round(h) / 512)
    extra = (4160 if width == height else 6240) if high_fidelity else 0
    return 65 + 129 * tiles + extra


def heuristic_text_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per CJK character, one per 4 other characters."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def load_tokenizer() -> Callable[[str], int]:
    """An o200k_base token counter if `bpe-openai` is installed, else the heuristic."""
    try:
        with warnings.catch_warnings():
            # bpe-openai 0.1.4 warns about importlib.resources on import.
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            encoding = bpe_openai.get_encoding("o200k_base")
    except Exception:  # not installed, or broken: estimate instead
        return heuristic_text_tokens
    return lambda text: len(encoding.encode(text)) if text else 0


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices in µ$: per 1M tokens, or (when `per_image` is set) per image.

    `per_image` maps quality -> size -> µ$ per image, with "*" standing for any other size.
    """

    text_in_per_1m: int
    image_in_per_1m: int
    image_out_per_1m: int
    per_image: Mapping[str, Mapping[str, int]] | None = None

    def image_price(self, quality: str, width: int, height: int) -> int | None:
        """The flat per-image price for this quality and size, if the model has one."""
        if not self.per_image:
            return None
        by_size = self.per_image.get(resolve_quality(quality))
        if not by_size:
            return None
        return by_size.get(f"{width}x{height}", by_size.get("*"))


GPT_IMAGE_1 = ModelPrice(text_in_per_1m=5 * MICRO, image_in_per_1m=10 * MICRO, image_out_per_1m=40 * MICRO)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices per model; models it does not name are priced as `fallback_model`."""

    models: Mapping[str, ModelPrice] = field(
        default_factory=lambda: MappingProxyType({DEFAULT_MODEL: GPT_IMAGE_1})
    )
    multiplier_ppm: int = MICRO
    fallback_model: str = DEFAULT_MODEL
    source: str = "default"

    def price_for(self, model: str | None) -> ModelPrice:
        """The prices of `model` (or of the fallback model)."""
        found = self.models.get(model or self.fallback_model)
        if found is None:
            found = self.models.get(self.fallback_model) or next(iter(self.models.values()), GPT_IMAGE_1)
        return found

    def cost(self, model: str | None, *, text_in: int, image_in: int, image_out: int) -> int:
        """µ$ for these token counts (rounded up to a whole micro-dollar)."""
        price = self.price_for(model)
        scaled = (
            text_in * price.text_in_per_1m
            + image_in * price.image_in_per_1m
            + image_out * price.image_out_per_1m
        )
        return -(-scaled * self.multiplier_ppm // (MICRO * MICRO))

    def estimate(
        self,
        *,
        model: str | None = None,
        quality: str | None = "medium",
        size: str | None = "1024x1024",
        n: int = 1,
        partial_images: int = 0,
        prompt: str = "",
        input_sizes: Sequence[tuple[int, int]] = (),
        high_fidelity: bool = False,
        count_tokens: Callable[[str], int] = heuristic_text_tokens,
    ) -> int:
        """µ$ a request should cost, from its parameters (before any call)."""
        width, height = parse_size(size)
        flat = self.price_for(model).image_price(quality or "medium", width, height)
        if flat is not None:
            return -(-n * flat * self.multiplier_ppm // MICRO)
        image_in = sum(
            input_image_tokens(w, h, high_fidelity=high_fidelity and i == 0)
            for i, (w, h) in enumerate(input_sizes)
        )
        per_image = output_image_tokens(quality or "medium", width, height)
        per_image += PARTIAL_IMAGE_TOKENS * partial_images
        return self.cost(model, text_in=count_tokens(prompt), image_in=image_in, image_out=n * per_image)

    def usage_cost(
        self,
        model: str | None,
        *,
        text_in: int,
        image_in: int,
        image_out: int,
        quality: str | None,
        size: str | None,
        n: int,
    ) -> int:
        """µ$ a finished request cost, from its `usage` (or the per-image price)."""
        width, height = parse_size(size)
        flat = self.price_for(model).image_price(quality or "medium", width, height)
        if flat is not None:
            return -(-n * flat * self.multiplier_ppm // MICRO)
        return self.cost(model, text_in=text_in, image_in=image_in, image_out=image_out)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PriceTable:
        """Parse imagegate's `GET /v1/pricing` body (µ$ amounts); raises ValueError if malformed."""
        try:
            if body.get("unit", "micro_usd") != "micro_usd":
                raise ValueError(f"unsupported pricing unit {body.get('unit')!r}")
            models = {
                str(name): ModelPrice(
                    text_in_per_1m=int(entry.get("text_in_per_1m") or 0),
                    image_in_per_1m=int(entry.get("image_in_per_1m") or 0),
                    image_out_per_1m=int(entry.get("image_out_per_1m") or 0),
                    per_image=_per_image(entry.get("per_image")),
                )
                for name, entry in body["models"].items()
            }
            multiplier = int(body.get("multiplier_ppm") or MICRO)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed pricing body: {exc}") from exc
        if not models:
            raise ValueError("the pricing body names no models")
        fallback = DEFAULT_MODEL if DEFAULT_MODEL in models else next(iter(models))
        return cls(models=models, multiplier_ppm=multiplier, fallback_model=fallback, source="server")


def _per_image(raw: Any) -> dict[str, dict[str, int]] | None:
    if raw is None:
        return None
    return {str(q): {str(s): int(v) for s, v in sizes.items()} for q, sizes in raw.items()}


DEFAULT_PRICES = PriceTable()


def estimate_cost(
    *,
    model: str | None = DEFAULT_MODEL,
    quality: str | None = "medium",
    size: str | None = "1024x1024",
    n: int = 1,
    partial_images: int = 0,
    prompt: str = "",
    table: PriceTable = DEFAULT_PRICES,
) -> float:
    """Dollars a request should cost by `table` (default: OpenAI's gpt-image-1 prices).

    >>> round(estimate_cost(quality="high", size="1024x1536", n=4), 4)
    0.9984
    """
    micro = table.estimate(
        model=model,
        quality=quality,
        size=size,
        n=n,
        partial_images=partial_images,
        prompt=prompt,
        count_tokens=load_tokenizer() if prompt else heuristic_text_tokens,
    )
    return micro_to_usd(micro)
