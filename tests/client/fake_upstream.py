"""The SDK tests' fake upstream: the shared one in tests/fakes/upstream.py (also the relay's)."""

from tests.fakes.upstream import COST_PER_CALL, USAGE, FakeUpstream, Received, tiny_png

__all__ = ["COST_PER_CALL", "USAGE", "FakeUpstream", "Received", "tiny_png"]
