"""Prices in integer micro-dollars: exact, rounded up, never negative."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.images.tokens import Usage, output_image_tokens
from imagegate.pricing import (
    ModelPrice,
    base_cost,
    charge,
    default_prices,
    micros_to_usd,
    price_for,
    usd_to_micros,
)

GPT_IMAGE_1 = default_prices()["gpt-image-1"]


@pytest.mark.parametrize(
    ("quality", "size", "micros"),
    [("low", (1024, 1024), 10_880), ("medium", (1024, 1536), 63_360), ("high", (1536, 1024), 248_320)],
)
def test_openai_per_image_prices_exactly(quality: str, size: tuple[int, int], micros: int) -> None:
    usage = Usage(image_out=output_image_tokens(quality, *size))
    assert base_cost(GPT_IMAGE_1, usage, images=1, quality=quality, size="x") == micros


def test_per_image_table_wins_and_falls_back() -> None:
    price = ModelPrice(
        text_in_per_1m=5_000_000,
        image_in_per_1m=0,
        image_out_per_1m=40_000_000,
        per_image={"low": {"1024x1024": 19_000, "*": 25_000}},
    )
    usage = Usage(text_in=100, image_out=272)
    assert base_cost(price, usage, images=2, quality="low", size="1024x1024") == 38_000
    assert base_cost(price, usage, images=2, quality="low", size="1080x1920") == 50_000
    assert base_cost(price, usage, images=2, quality="high", size="1024x1024") == 500 + 10_880


def test_unknown_models_use_the_star_price() -> None:
    assert price_for(default_prices(), "someone-elses-model") == default_prices()["*"]


@given(st.integers(0, 10**12), st.integers(0, 10**8))
def test_charge_rounds_up_and_never_undercharges(base: int, ppm: int) -> None:
    c = charge(base, ppm)
    assert c * 1_000_000 >= base * ppm > (c - 1) * 1_000_000 or base * ppm == 0 == c


@given(st.integers(0, 10**15))
def test_usd_round_trip(micros: int) -> None:
    usd = Decimal(micros) / 1_000_000
    assert usd_to_micros(str(usd)) == micros
    assert round(micros_to_usd(micros) * 1_000_000) == micros


@pytest.mark.parametrize("bad", ["-1", "0.0000001", "abc", "NaN", "inf"])
def test_usd_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        usd_to_micros(bad)


@pytest.mark.parametrize(
    "prices",
    [
        {"text_in_per_1m": 10**30, "image_in_per_1m": 1, "image_out_per_1m": 1},
        {
            "text_in_per_1m": 1,
            "image_in_per_1m": 1,
            "image_out_per_1m": 1,
            "per_image": {"low": {"*": 10**13}},
        },
        {"text_in_per_1m": 1, "image_in_per_1m": 1, "image_out_per_1m": 1, "per_image": {"low": {"*": -5}}},
    ],
)
def test_prices_are_bounded(prices: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ModelPrice.model_validate(prices)


def test_the_largest_cost_fits_a_bigint() -> None:
    """The most expensive request at the bounds (every price, every token count, ten images, the
    largest multiplier) costs less than a BIGINT holds, and its token counts fit an Integer."""
    from imagegate.storage import bounds

    most = ModelPrice(
        text_in_per_1m=bounds.MAX_PRICE_MICROS,
        image_in_per_1m=bounds.MAX_PRICE_MICROS,
        image_out_per_1m=bounds.MAX_PRICE_MICROS,
    )
    most_tokens = 10 * bounds.MAX_TOKENS  # ten images' reports
    usage = Usage(text_in=most_tokens, image_in=most_tokens, image_out=most_tokens)
    cost = base_cost(most, usage, images=10, quality="high", size="1024x1024")
    assert charge(cost, bounds.INT32_MAX) <= bounds.INT64_MAX
    assert 10 * bounds.MAX_TOKENS <= bounds.INT32_MAX
    assert charge(10 * bounds.MAX_PRICE_MICROS, bounds.INT32_MAX) <= bounds.INT64_MAX  # per image
