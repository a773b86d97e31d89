from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate.errors import InvalidValue
from imagegate.images.sizes import (
    MAX_EDGE,
    MAX_PIXELS,
    MAX_RATIO,
    MIN_EDGE,
    STANDARD_SIZES,
    auto_edit_size,
    auto_generation_size,
    parse_size,
)


def _valid(w: int, h: int) -> bool:
    return (
        MIN_EDGE <= w <= MAX_EDGE
        and MIN_EDGE <= h <= MAX_EDGE
        and max(w, h) <= MAX_RATIO * min(w, h)
        and w * h <= MAX_PIXELS
    )


def test_constants() -> None:
    assert STANDARD_SIZES == ((1024, 1024), (1536, 1024), (1024, 1536))
    assert (MIN_EDGE, MAX_EDGE, MAX_RATIO, MAX_PIXELS) == (64, 3840, 3.0, 8294400)


def test_auto() -> None:
    assert parse_size("auto") is None
    assert parse_size("  auto ") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1024x1024", (1024, 1024)),
        ("1536x1024", (1536, 1024)),
        ("1024x1536", (1024, 1536)),
        ("1080x1080", (1080, 1080)),
        ("1080x1920", (1080, 1920)),
        ("1200x630", (1200, 630)),
        ("1200x675", (1200, 675)),
        ("1200x627", (1200, 627)),
        ("256x256", (256, 256)),
        ("512x512", (512, 512)),
        ("1792x1024", (1792, 1024)),
        ("3840x2160", (3840, 2160)),
        ("64x192", (64, 192)),
        ("1024X1536", (1024, 1536)),
        ("1024×1536", (1024, 1536)),
        ("  1024 x 1536\n", (1024, 1536)),
    ],
)
def test_valid_sizes(text: str, expected: tuple[int, int]) -> None:
    assert parse_size(text) == expected


def test_syntax_error_message() -> None:
    with pytest.raises(InvalidValue) as info:
        parse_size("foo")
    assert info.value.param == "size"
    assert info.value.code == "invalid_value"
    assert info.value.message == (
        "Invalid value: 'foo'. Supported values are: 'auto', '1024x1024', '1536x1024', "
        "and '1024x1536', or a custom 'WIDTHxHEIGHT' with edges from 64 to 3840 px, an "
        "aspect ratio up to 3:1 and at most 8294400 pixels."
    )


@pytest.mark.parametrize(
    "text", ["", "1024", "1024x", "x1024", "-64x64", "1024x1024x1", "1e3x1024", "1024*1024"]
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(InvalidValue, match="Supported values are") as info:
        parse_size(text)
    assert info.value.param == "size"


@pytest.mark.parametrize(
    "text, words",
    [
        ("63x64", "between 64 and 3840"),
        ("0x0", "between 64 and 3840"),
        ("3841x1280", "between 64 and 3840"),
        ("99999999999999999999x64", "between 64 and 3840"),
        ("1000x333", "aspect ratio"),
        ("3840x3840", "8294400 pixels"),
        ("3000x3000", "8294400 pixels"),
    ],
)
def test_limit_errors_name_the_limit(text: str, words: str) -> None:
    with pytest.raises(InvalidValue, match=words) as info:
        parse_size(text)
    assert info.value.param == "size"
    assert "Supported values" not in info.value.message


_edges = st.integers(min_value=0, max_value=2 * MAX_EDGE)


@settings(max_examples=400)
@given(_edges, _edges, st.sampled_from(["x", "X", "×"]))
def test_parse_size_accepts_exactly_the_valid_sizes(w: int, h: int, sep: str) -> None:
    text = f"{w}{sep}{h}"
    if _valid(w, h):
        assert parse_size(text) == (w, h)
    else:
        with pytest.raises(InvalidValue) as info:
            parse_size(text)
        assert info.value.param == "size"


@settings(max_examples=300)
@given(st.integers(MIN_EDGE, MAX_EDGE), st.floats(1.0, MAX_RATIO), st.booleans())
def test_parse_size_round_trips_valid_shapes(short: int, ratio: float, tall: bool) -> None:
    long = min(int(short * ratio), MAX_EDGE, MAX_PIXELS // short)
    if long < short:
        return
    w, h = (short, long) if tall else (long, short)
    assert _valid(w, h)
    assert parse_size(f"{w}x{h}") == (w, h)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_raises_only_invalid_value(text: str) -> None:
    try:
        result = parse_size(text)
    except InvalidValue as exc:
        assert exc.param == "size"
    else:
        assert result is None or _valid(*result)


@pytest.mark.parametrize(
    "prompt",
    [
        "A portrait of an old sailor",
        "vertical composition of a waterfall",
        "Movie POSTER for a space opera",
        "a phone wallpaper with neon cats",
        "Instagram story background",
        "竖版插画，一只猫",
        "一张人像照片",
        "a waterfall, 9:16",
        "a vertical banner for a conference",
    ],
)
def test_auto_generation_portrait(prompt: str) -> None:
    assert auto_generation_size(prompt) == (1024, 1536)


@pytest.mark.parametrize(
    "prompt",
    [
        "A mountain landscape at dawn",
        "Panorama of the Alps",
        "a wide shot of a city",
        "website BANNER with a fox",
        "横版的城市夜景",
        "美丽的风景",
        "a cat, 16:9",
        "a horizontal poster",
    ],
)
def test_auto_generation_landscape(prompt: str) -> None:
    assert auto_generation_size(prompt) == (1536, 1024)


@pytest.mark.parametrize(
    "prompt", ["a cat", "", "worldwide shipping logo", "postered", "portraiture", "一只猫"]
)
def test_auto_generation_square(prompt: str) -> None:
    assert auto_generation_size(prompt) == (1024, 1024)


@settings(max_examples=200)
@given(st.text())
def test_auto_generation_always_standard(prompt: str) -> None:
    assert auto_generation_size(prompt) in STANDARD_SIZES


@pytest.mark.parametrize(
    "size, expected",
    [
        ((1024, 1024), (1024, 1024)),
        ((256, 256), (1024, 1024)),  # hardening: it came back 256x256, outside the size enum
        ((1200, 630), (1536, 1024)),
        ((800, 600), (1536, 1024)),  # 4:3 is nearer 3:2 than 1:1
        ((1100, 1000), (1024, 1024)),
        ((64, 192), (1024, 1536)),
        ((3840, 2160), (1536, 1024)),
        ((100000, 10), (1536, 1024)),
        ((1, 1), (1024, 1024)),
    ],
)
def test_auto_edit_picks_the_models_size_nearest_the_inputs_ratio(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert auto_edit_size(*size) == expected


@settings(max_examples=500)
@given(st.integers(1, 40000), st.integers(1, 40000))
def test_auto_edit_always_standard_and_keeps_orientation(w: int, h: int) -> None:
    out = auto_edit_size(w, h)
    assert out in STANDARD_SIZES
    assert out == (1024, 1024) or (out[0] > out[1]) == (w > h)


def test_auto_edit_rejects_empty() -> None:
    with pytest.raises(ValueError):
        auto_edit_size(0, 10)
