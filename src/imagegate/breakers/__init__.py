"""Circuit breakers per upstream: the CircuitBreaker port, its in-process and Redis backends.

A circuit opens after ``failure_threshold`` consecutive failures or a failure rate over a window,
refuses requests for a cooldown, then lets exactly one probe through (half-open): its success
closes the circuit, its failure re-opens it. See ``imagegate.breakers.base`` for the full contract.
"""

from __future__ import annotations

from imagegate.breakers.base import BreakerConfig, BreakerState, BreakerUnavailable, CircuitBreaker
from imagegate.breakers.memory import MemoryCircuitBreaker

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "BreakerUnavailable",
    "CircuitBreaker",
    "MemoryCircuitBreaker",
    "build_circuit_breaker",
]


def build_circuit_breaker(
    redis_url: str | None,
    config: BreakerConfig,
    *,
    prefix: str = "imagegate:",
    socket_timeout_s: float = 2.0,
) -> CircuitBreaker:
    """The Redis breaker when a URL is given, else the in-process one (prefix and timeout unused)."""
    if redis_url is None:
        return MemoryCircuitBreaker(config)
    # Imported here: only a Redis deployment needs the redis package.
    from imagegate.breakers.redis import RedisCircuitBreaker

    return RedisCircuitBreaker(redis_url, config, prefix=prefix, socket_timeout_s=socket_timeout_s)
