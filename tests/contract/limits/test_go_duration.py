"""go_duration: Go's time.Duration.String(), as OpenAI's x-ratelimit-reset-* headers carry it."""

from __future__ import annotations

import math
import random
import re

import pytest

from imagegate.limits import go_duration
from imagegate.limits.duration import format_go_ns

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


# Go's own table, src/time/time_test.go (durationTests).
@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1100, "1.1µs"),
        (2_200_000, "2.2ms"),
        (3_300_000_000, "3.3s"),
        (4 * MINUTE + 5 * SECOND, "4m5s"),
        (4 * MINUTE + 5001 * 1_000_000, "4m5.001s"),
        (5 * HOUR + 6 * MINUTE + 7001 * 1_000_000, "5h6m7.001s"),
        (8 * MINUTE + 1, "8m0.000000001s"),
        ((1 << 63) - 1, "2562047h47m16.854775807s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
    ],
)
def test_format_matches_go(ns: int, text: str) -> None:
    assert format_go_ns(ns) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (0.02, "20ms"),
        (360, "6m0s"),
        (3723, "1h2m3s"),
        (2.5, "2.5s"),
        (60, "1m0s"),
        (3600, "1h0m0s"),
        (0.3, "300ms"),  # 0.3 * 1000 is 300.00000000000006: float noise is not a millisecond
        (1.5, "1.5s"),
        (60 / 7, "8.572s"),  # rounded up to the millisecond
        (0.0001, "1ms"),  # a non-zero wait never prints "0s"
        (86_399.999, "23h59m59.999s"),
        (-3, "0s"),
    ],
)
def test_header_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        go_duration(math.inf)


_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse(text: str) -> float:
    """A reader for the subset go_duration writes, strict enough to catch malformed output."""
    assert re.fullmatch(r"(\d+h)?(\d+m)?(\d+(\.\d+)?s)|\d+(\.\d+)?ms", text), text
    return sum(float(n) * _UNIT_S[unit] for n, unit in _PART.findall(text))


def test_properties_over_many_values() -> None:
    rng = random.Random(0)
    values = sorted(
        [rng.uniform(0, 2) for _ in range(300)]
        + [rng.uniform(0, 200_000) for _ in range(300)]
        + [k / 1000 for k in range(0, 2001)]
        + [60 * k for k in range(100)]
    )
    texts = [go_duration(v) for v in values]
    for value, text in zip(values, texts, strict=True):
        assert text.isascii()
        back = parse(text)
        assert value - 1e-9 <= back < value + 0.001  # rounded up, by less than a millisecond
        assert "." not in text or not text.split(".")[-1].rstrip("ms").endswith("0")  # trimmed zeros
        if value >= 60:
            assert re.fullmatch(r"(\d+h)?\d+m\d+(\.\d+)?s", text)  # "6m0s", never "6m"
    parsed = [parse(t) for t in texts]
    assert parsed == sorted(parsed)  # monotonic
