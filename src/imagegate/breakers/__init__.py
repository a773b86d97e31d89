"""Circuit breakers per upstream: the CircuitBreaker port, its in-process and Redis backends.

A circuit opens after ``failure_threshold`` consecutive failures or a failure rate over a window,
refuses requests for a cooldown, then lets exactly one probe through (half-open): its success
closes the circuit, its failure re-opens it. See ``imagegate.breakers.base`` for the full contract.
"""

from __future__ import annotations

from pathlib import Path

from imagegate.breakers.base import BreakerConfig, BreakerState, BreakerUnavailable, CircuitBreaker
from imagegate.breakers.local import LocalCircuitBreaker

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "BreakerUnavailable",
    "CircuitBreaker",
    "LocalCircuitBreaker",
    "build_circuit_breaker",
]


def build_circuit_breaker(
    redis_url: str | None,
    config: BreakerConfig,
    *,
    prefix: str = "imagegate:",
    socket_timeout_s: float = 2.0,
    shared_path: Path | None = None,
) -> CircuitBreaker:
    """The Redis breaker when a URL is given; else the one of every process opening `shared_path`
    (`serve --workers N`), else this process's own (prefix and timeout unused)."""
    if redis_url is None:
        if shared_path is not None:
            return LocalCircuitBreaker.shared(shared_path, config)
        return LocalCircuitBreaker(config)
    # Imported here: only a Redis deployment needs the redis package.
    from imagegate.breakers.redis import RedisCircuitBreaker

    return RedisCircuitBreaker(redis_url, config, prefix=prefix, socket_timeout_s=socket_timeout_s)
