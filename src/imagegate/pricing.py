"""Prices and costs, in integer micro-dollars (1 USD = 1_000_000). Pure functions, no I/O.

A model is priced per 1M tokens of text in, image in and image out (OpenAI's way), or,
when `per_image` is set, by the image: quality -> size (or "*" for any size) -> price.
A key's charge is the base cost times its multiplier (parts per million, 1_000_000 = 1x),
always rounded up to the next micro-dollar so rounding never undercharges.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BaseModel, Field

from imagegate.images.tokens import Usage

MICROS_PER_USD = 1_000_000
PPM = 1_000_000
# The most a price may be (micro-dollars per 1M tokens, or per image): $1M. With every token count a
# request can reach and the largest multiplier, every cost stays far inside a BIGINT column
# (storage/bounds.py re-states it; the engines, which price routes, may not import storage).
MAX_PRICE_MICROS = 10**12
Price = Annotated[int, Field(ge=0, le=MAX_PRICE_MICROS)]


class ModelPrice(BaseModel):
    """One model's prices (micro-dollars)."""

    text_in_per_1m: Price = Field(description="Per 1M prompt text tokens.")
    image_in_per_1m: Price = Field(description="Per 1M input image tokens.")
    image_out_per_1m: Price = Field(description="Per 1M output image tokens.")
    per_image: dict[str, dict[str, Price]] | None = Field(
        default=None,
        description="Flat price per image: quality (or '*') -> size ('1024x1024', ... or '*') -> micro-USD.",
    )


def default_prices() -> dict[str, ModelPrice]:
    """OpenAI's published figures; '*' prices every model not listed (gpt-image-1's)."""
    gpt_image_1 = ModelPrice(
        text_in_per_1m=5_000_000, image_in_per_1m=10_000_000, image_out_per_1m=40_000_000
    )
    return {
        "*": gpt_image_1,
        "gpt-image-1": gpt_image_1,
        "gpt-image-1-mini": ModelPrice(
            text_in_per_1m=2_000_000, image_in_per_1m=2_500_000, image_out_per_1m=8_000_000
        ),
        "gpt-image-1.5": ModelPrice(
            text_in_per_1m=5_000_000, image_in_per_1m=8_000_000, image_out_per_1m=32_000_000
        ),
    }


def price_for(prices: dict[str, ModelPrice], model: str) -> ModelPrice:
    return prices.get(model) or prices["*"]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def token_cost(tokens: int, per_1m: int) -> int:
    return ceil_div(tokens * per_1m, 1_000_000)


def base_cost(price: ModelPrice, usage: Usage, *, images: int, quality: str, size: str) -> int:
    """What `images` images with this usage cost at list price, in micro-dollars."""
    if price.per_image is not None:
        by_size = price.per_image.get(quality) or price.per_image.get("*", {})  # "*": any quality
        flat = by_size.get(size, by_size.get("*"))
        if flat is not None:
            return images * flat
    return (
        token_cost(usage.text_in, price.text_in_per_1m)
        + token_cost(usage.image_in, price.image_in_per_1m)
        + token_cost(usage.image_out, price.image_out_per_1m)
    )


def charge(base_micros: int, multiplier_ppm: int) -> int:
    """The key's price: base cost times its multiplier, rounded up."""
    return ceil_div(base_micros * multiplier_ppm, PPM)


def usd_to_micros(value: str | int | float | Decimal) -> int:
    """'5' or '0.25' -> micro-dollars, exactly; more than 6 decimals or a negative is refused."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of dollars: {value!r}") from exc
    micros = amount * MICROS_PER_USD
    if not amount.is_finite() or micros != micros.to_integral_value() or amount < 0:
        raise ValueError(f"amount must be >= 0 with at most 6 decimals: {value!r}")
    return int(micros)


def micros_to_usd(micros: int) -> float:
    """For JSON: a number in dollars (exact to the micro-dollar when printed with 6 decimals)."""
    return micros / MICROS_PER_USD
