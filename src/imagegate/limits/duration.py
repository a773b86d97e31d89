"""Durations as Go prints them (time.Duration.String), the format of OpenAI's x-ratelimit-reset-* headers.

Go: "0s"; under a second, one unit (ns, µs, ms) with a trimmed decimal fraction ("20ms", "1.5ms");
from a second up, h/m/s with zero minutes and seconds kept once a larger unit is printed ("6m0s",
"1h0m0s") and a trimmed fraction of seconds ("2.5s", "1h2m3.5s").
"""

from __future__ import annotations

import math

_NS_PER_S = 1_000_000_000
_NS_PER_MIN = 60 * _NS_PER_S


def go_duration(seconds: float) -> str:
    """Format a non-negative duration for an x-ratelimit-reset-* header ("1s", "20ms", "6m0s").

    Rounded up to the whole millisecond, as OpenAI's headers read: a client that waits this long
    is never early, a non-zero wait never prints "0s", and the output is ASCII (never "µs").
    Negative durations print "0s".
    """
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, not {seconds!r}")
    # The 1e-6 ms slack keeps float noise (0.3 * 1000 = 300.00000000000006) from adding a millisecond.
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    return format_go_ns(ms * 1_000_000)


def format_go_ns(ns: int) -> str:
    """time.Duration(ns).String(), exactly."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_fraction(u, 3)}µs"
    if u < _NS_PER_S:
        return f"{sign}{_fraction(u, 6)}ms"
    text = f"{_fraction(u % _NS_PER_MIN, 9)}s"
    minutes = u // _NS_PER_MIN
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes >= 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _fraction(value: int, digits: int) -> str:
    """value / 10**digits with trailing zeros (and a bare point) dropped, as Go's fmtFrac."""
    whole, frac = divmod(value, 10**digits)
    decimals = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)
