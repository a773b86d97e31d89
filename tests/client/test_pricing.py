"""Client-side prices: the default table, the token formula, server tables, and fallbacks."""

from __future__ import annotations

import pytest

from imagegate.client import Client, PriceTable, estimate_cost
from imagegate.client.pricing import (
    DEFAULT_PRICES,
    heuristic_text_tokens,
    input_image_tokens,
    output_image_tokens,
    parse_size,
)
from tests.client.fake_upstream import COST_PER_CALL, FakeUpstream

SERVER_BODY = {
    "object": "pricing",
    "currency": "usd",
    "unit": "micro_usd",
    "multiplier_ppm": 1_000_000,
    "models": {
        "gpt-image-1": {
            "text_in_per_1m": 5_000_000,
            "image_in_per_1m": 10_000_000,
            "image_out_per_1m": 40_000_000,
            "per_image": None,
        }
    },
}


@pytest.mark.parametrize(
    ("quality", "tokens"),
    [
        ("low", (272, 408, 400)),
        ("medium", (1056, 1584, 1568)),
        ("high", (4160, 6240, 6208)),
    ],
)
def test_output_tokens_reproduce_openais_table(quality: str, tokens: tuple[int, int, int]) -> None:
    sizes = [(1024, 1024), (1024, 1536), (1536, 1024)]
    assert tuple(output_image_tokens(quality, w, h) for w, h in sizes) == tokens


def test_custom_sizes_and_inputs() -> None:
    assert output_image_tokens("low", 1080, 1920) == (17 + 1) * 30
    assert output_image_tokens("auto", 1024, 1024) == 1056
    assert input_image_tokens(1024, 1024) == 194
    assert input_image_tokens(1024, 1024, high_fidelity=True) == 194 + 4160
    assert parse_size("auto") == (1024, 1024) and parse_size("1200x630") == (1200, 630)
    with pytest.raises(ValueError):
        parse_size("big")


def test_estimates_in_dollars() -> None:
    assert estimate_cost(quality="high", size="1024x1536", n=4) == pytest.approx(0.9984)
    assert estimate_cost(quality="low") == pytest.approx(0.01088)
    assert estimate_cost(quality="low", partial_images=2) == pytest.approx((272 + 200) * 40 / 1e6)
    with_prompt = estimate_cost(quality="low", prompt="a red fox in a blue forest")
    assert 0.01088 < with_prompt < 0.0110
    assert heuristic_text_tokens("一只猫 cat") == 3 + 1


def test_server_table_with_per_image_prices_and_multiplier() -> None:
    body = {
        **SERVER_BODY,
        "multiplier_ppm": 1_500_000,
        "models": {
            **SERVER_BODY["models"],  # type: ignore[dict-item]
            "flat-model": {
                "text_in_per_1m": 0,
                "image_in_per_1m": 0,
                "image_out_per_1m": 0,
                "per_image": {"low": {"1024x1024": 5000, "*": 6000}},
            },
        },
    }
    table = PriceTable.from_json(body)
    assert table.source == "server"
    assert table.estimate(model="flat-model", quality="low", size="1024x1024", n=2) == 15000
    assert table.estimate(model="flat-model", quality="low", size="1536x1024") == 9000
    assert table.estimate(model="unknown", quality="low") == 16320  # priced as gpt-image-1, x1.5
    with pytest.raises(ValueError):
        PriceTable.from_json({"models": {}})


def test_client_reads_the_servers_table(fake: FakeUpstream) -> None:
    fake.pricing = {**SERVER_BODY, "multiplier_ppm": 2_000_000}
    with Client("sk", fake.api_base) as client:
        assert client.pricing().multiplier_ppm == 2_000_000
        assert client.generate("x").cost_micro_usd == 2 * COST_PER_CALL
        assert client.estimate_cost(quality="low") == pytest.approx(2 * 0.01088)
    assert len([r for r in fake.received if r.path.endswith("/pricing")]) == 1  # fetched once


@pytest.mark.parametrize("pricing", [None, {"unit": "cents", "models": {}}, ["not", "an", "object"]])
def test_falls_back_to_the_default_table(fake: FakeUpstream, pricing: object) -> None:
    fake.pricing = pricing  # type: ignore[assignment]  # None: 404
    with Client("sk", fake.api_base) as client:
        assert client.pricing() is DEFAULT_PRICES
        assert client.generate("x").cost_micro_usd == COST_PER_CALL


def test_unreachable_server_prices_with_the_default() -> None:
    with Client("sk", "http://127.0.0.1:9/v1", max_retries=0) as client:
        assert client.estimate_cost(quality="low") == pytest.approx(0.01088)


def test_cost_is_estimated_when_the_server_sends_no_usage(fake: FakeUpstream) -> None:
    fake.push(("status", 200, {"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}]}, {}))
    with Client("sk", fake.api_base) as client:
        result = client.generate("no usage here", quality="high", size="1024x1024")
    assert result.cost_estimated and result.usage is None
    assert result.cost_micro_usd == pytest.approx(4160 * 40 + 5 * 4, abs=40)
