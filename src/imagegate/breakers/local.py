"""The circuit breaker without Redis: exact within one process, or across the processes of one
machine that share its records' file (`imagegate serve --workers N`; imagegate.records).

State is one small record per name ever seen (a channel), kept for the life of the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from imagegate.records import Codec, FileRecords, MemoryRecords, Records


def _dump(circuit: Circuit) -> dict[str, Any]:
    return {**circuit.__dict__, "buckets": {str(k): v for k, v in circuit.buckets.items()}}


def _load(value: dict[str, Any]) -> Circuit:
    buckets = {int(k): tuple(v) for k, v in value.pop("buckets").items()}
    return Circuit(**value, buckets=buckets)


CIRCUITS = Codec[Circuit](_dump, _load)


class LocalCircuitBreaker:
    """A CircuitBreaker over `records`: this process's memory (the default) or a shared file
    (`shared(path)`). Each call that changes a circuit is one atomic update of it, so the probe
    grant is exact under any number of coroutines, threads and (with the file) processes; `allow`
    answers a closed circuit by a read (as the Redis script does, writing nothing). The
    transitions mirror the Redis scripts step for step."""

    def __init__(self, config: BreakerConfig | None = None, records: Records[Circuit] | None = None) -> None:
        self.config = config or BreakerConfig()
        self._records: Records[Circuit] = records if records is not None else MemoryRecords()

    @classmethod
    def shared(cls, path: Path, config: BreakerConfig | None = None) -> LocalCircuitBreaker:
        """The breaker of every process that opens `path` (a SQLite file)."""
        return cls(config, FileRecords(path, "circuits", CIRCUITS))

    async def allow(self, name: str, now: float) -> bool:
        cooldown = self.config.cooldown_s
        # A closed circuit (nearly every call) is answered by a read: with the shared file, a
        # write transaction per request was a tenth of a millisecond of every relayed request
        # (cProfile). A circuit that opens meanwhile is a race the write would lose as well.
        current = self._records.get(name)
        if current is None or current.opened_at is None:
            return True

        def ask(circuit: Circuit | None) -> tuple[Circuit | None, bool]:
            if circuit is None or circuit.opened_at is None:
                return circuit, True
            if now < circuit.opened_at + cooldown:
                return circuit, False
            if circuit.probe_at is not None and now < circuit.probe_at + cooldown:
                return circuit, False  # a probe is in flight and not yet given up
            circuit.probe_at = now
            return circuit, True

        return self._records.update(name, ask)

    async def record(self, name: str, ok: bool, now: float) -> BreakerState:
        config = self.config

        def count(circuit: Circuit | None) -> tuple[Circuit, BreakerState]:
            circuit = circuit or Circuit()
            if circuit.opened_at is not None:
                if now < circuit.opened_at + config.cooldown_s:
                    pass  # open: a request admitted before it opened; not counted
                elif ok:
                    circuit = Circuit()
                else:
                    circuit.opened_at, circuit.probe_at, circuit.cause = now, None, CAUSE_PROBE
                return circuit, view(circuit, now, config)
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
            return circuit, view(circuit, now, config)

        return self._records.update(name, count)

    async def state(self, name: str, now: float) -> BreakerState:
        return view(self._records.get(name) or Circuit(), now, self.config)  # a read: no write lock

    async def reset(self, name: str) -> None:
        self._records.update(name, lambda _: (None, None))

    async def close(self) -> None:
        self._records.close()
