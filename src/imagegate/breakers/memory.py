"""The in-process circuit breaker: exact, per process (the default when no Redis URL is set).

State is one small record per name ever seen (a channel), kept for the life of the process.
"""

from __future__ import annotations

import threading

from imagegate.breakers.base import (
    BUCKETS,
    CAUSE_NONE,
    CAUSE_PROBE,
    BreakerConfig,
    BreakerState,
    Circuit,
    bucket_number,
    opening_cause,
    view,
    window_totals,
)


class MemoryCircuitBreaker:
    """A CircuitBreaker in this process's memory.

    No critical section awaits, so a plain lock makes the probe grant exact under any number of
    coroutines (and threads, and event loops). The transitions mirror the Redis scripts step for step.
    """

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self._circuits: dict[str, Circuit] = {}
        self._lock = threading.Lock()

    async def allow(self, name: str, now: float) -> bool:
        cooldown = self.config.cooldown_s
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.opened_at is None:
                return True
            if now < circuit.opened_at + cooldown:
                return False
            if circuit.probe_at is not None and now < circuit.probe_at + cooldown:
                return False  # a probe is in flight and not yet given up
            circuit.probe_at = now
            return True

    async def record(self, name: str, ok: bool, now: float) -> BreakerState:
        config = self.config
        with self._lock:
            circuit = self._circuits.setdefault(name, Circuit())
            if circuit.opened_at is not None:
                if now < circuit.opened_at + config.cooldown_s:
                    pass  # open: a request admitted before it opened; not counted
                elif ok:
                    circuit = self._circuits[name] = Circuit()
                else:
                    circuit.opened_at, circuit.probe_at, circuit.cause = now, None, CAUSE_PROBE
                return view(circuit, now, config)
            number = bucket_number(now, config)
            slot = number % BUCKETS
            held, requests, failures = circuit.buckets.get(slot, (number, 0, 0))
            if held < number:  # a stale bucket from an earlier turn of the ring
                held, requests, failures = number, 0, 0
            circuit.buckets[slot] = (held, requests + 1, failures + (0 if ok else 1))
            circuit.consecutive = 0 if ok else circuit.consecutive + 1
            total, failed = window_totals(circuit, now, config)
            cause = opening_cause(circuit.consecutive, total, failed, config)
            if cause != CAUSE_NONE:
                circuit.opened_at, circuit.cause = now, cause
                circuit.opened_requests, circuit.opened_failures = total, failed
            return view(circuit, now, config)

    async def state(self, name: str, now: float) -> BreakerState:
        with self._lock:
            return view(self._circuits.get(name) or Circuit(), now, self.config)

    async def reset(self, name: str) -> None:
        with self._lock:
            self._circuits.pop(name, None)

    async def close(self) -> None:
        return None
