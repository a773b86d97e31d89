"""What the bench scripts share: the repository root on sys.path (for tests.fakes and
tests.services), and percentiles."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0.5, 0.99...) of `values`, inclusive method."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]
