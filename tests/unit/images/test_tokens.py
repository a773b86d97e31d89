from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate.images.tokens import (
    Usage,
    count_text_tokens,
    input_image_tokens,
    job_usage,
    output_image_tokens,
)

QUALITIES = ("low", "medium", "high")
TABLE = {
    "low": {(1024, 1024): 272, (1024, 1536): 408, (1536, 1024): 400},
    "medium": {(1024, 1024): 1056, (1024, 1536): 1584, (1536, 1024): 1568},
    "high": {(1024, 1024): 4160, (1024, 1536): 6240, (1536, 1024): 6208},
}


def test_text_tokens() -> None:
    assert count_text_tokens("") == 0
    assert count_text_tokens("hello world") == 2
    assert count_text_tokens("a cat wearing a hat") > 0
    assert count_text_tokens("一只戴帽子的猫") > 0


@pytest.mark.parametrize(
    "quality, size, tokens",
    [(q, size, tokens) for q, row in TABLE.items() for size, tokens in row.items()],
)
def test_output_table(quality: str, size: tuple[int, int], tokens: int) -> None:
    assert output_image_tokens(quality, *size) == tokens


def test_output_unknown_quality() -> None:
    with pytest.raises(ValueError):
        output_image_tokens("auto", 1024, 1024)


_sizes = st.tuples(st.integers(64, 3840), st.integers(64, 3840))


@settings(max_examples=200)
@given(_sizes)
def test_output_monotonic_in_quality(size: tuple[int, int]) -> None:
    low, medium, high = (output_image_tokens(q, *size) for q in QUALITIES)
    assert 0 < low < medium < high


@settings(max_examples=200)
@given(st.sampled_from(QUALITIES), _sizes, st.integers(0, 500), st.integers(0, 500))
def test_output_monotonic_in_area(quality: str, size: tuple[int, int], dw: int, dh: int) -> None:
    w, h = size
    assert output_image_tokens(quality, w, h) <= output_image_tokens(quality, w + dw, h + dh)


@settings(max_examples=200)
@given(st.sampled_from(QUALITIES), _sizes)
def test_output_formula(quality: str, size: tuple[int, int]) -> None:
    b = {"low": 16, "medium": 32, "high": 64}[quality]
    w, h = size
    expected = (math.ceil(b * w / 1024) + 1) * math.ceil(b * h / 1024)
    assert output_image_tokens(quality, w, h) == expected


@pytest.mark.parametrize(
    "size, tokens",
    [
        ((1024, 1024), 194),  # 512x512: 1 tile
        ((512, 512), 194),
        ((256, 256), 194),  # not scaled up
        ((1024, 1536), 65 + 129 * 2),  # 512x768
        ((1536, 1024), 65 + 129 * 2),
        ((2048, 4096), 65 + 129 * 2),  # 1024x2048 -> 512x1024
        ((4096, 1024), 65 + 129 * 4),  # 2048x512
        ((800, 600), 65 + 129 * 2),  # 683x512
        ((600, 600), 194),
    ],
)
def test_input_tokens(size: tuple[int, int], tokens: int) -> None:
    assert input_image_tokens(*size) == tokens


def test_input_high_fidelity() -> None:
    assert input_image_tokens(1024, 1024, high_fidelity=True) == 194 + 4160
    assert input_image_tokens(1024, 1536, high_fidelity=True) == 65 + 129 * 2 + 6240


@settings(max_examples=300)
@given(st.integers(1, 20000), st.integers(1, 20000))
def test_input_tokens_are_tiles(w: int, h: int) -> None:
    tokens = input_image_tokens(w, h)
    tiles, rest = divmod(tokens - 65, 129)
    assert rest == 0 and tiles >= 1
    assert tokens >= 194
    # after the scaling the short side is at most 512 and the long side at most 2048
    assert tiles <= 4


@settings(max_examples=200)
@given(st.integers(512, 20000), st.integers(512, 20000))
def test_input_tokens_tile_count(w: int, h: int) -> None:
    # both sides >= 512: the short side becomes 512 (about), the long side long/short * 512
    long, short = max(w, h), min(w, h)
    ratio = min(long / short * 512, 2048) / 512
    tiles = input_image_tokens(w, h) - 65
    assert tiles % 129 == 0
    assert tiles // 129 in (math.floor(ratio), math.ceil(ratio), math.ceil(ratio) + 1)


_usages = st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))


@given(_usages, _usages, _usages)
def test_usage_addition_associative(a: Usage, b: Usage, c: Usage) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + Usage() == a
    assert (a + b).total == a.total + b.total


@given(_usages)
def test_usage_openai_totals(u: Usage) -> None:
    body = u.to_openai()
    assert body["input_tokens"] == (
        body["input_tokens_details"]["text_tokens"] + body["input_tokens_details"]["image_tokens"]
    )
    assert body["total_tokens"] == body["input_tokens"] + body["output_tokens"] == u.total
    assert body["output_tokens_details"] == {"image_tokens": u.image_out, "text_tokens": 0}
    stream = u.to_openai_stream()
    assert "output_tokens_details" not in stream
    assert {k: v for k, v in body.items() if k != "output_tokens_details"} == stream


def test_usage_exact_shape() -> None:
    assert Usage(text_in=10, image_in=40, image_out=50).to_openai() == {
        "input_tokens": 50,
        "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
        "output_tokens": 50,
        "total_tokens": 100,
        "output_tokens_details": {"image_tokens": 50, "text_tokens": 0},
    }


def test_job_usage_generation() -> None:
    usage = job_usage(prompt="hello world", quality="medium", width=1024, height=1024, n=2)
    assert usage == Usage(text_in=2, image_in=0, image_out=2 * 1056)


def test_job_usage_partials_and_inputs() -> None:
    usage = job_usage(
        prompt="hello world",
        quality="low",
        width=1536,
        height=1024,
        n=3,
        partial_images=2,
        input_sizes=[(1024, 1024), (1024, 1536)],
        high_fidelity=True,
    )
    assert usage.text_in == 2
    assert usage.image_in == (194 + 4160) + 323  # surcharge on the first image only
    assert usage.image_out == 3 * (400 + 200)
