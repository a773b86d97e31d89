"""The circuit-breaker port: whether to send a request to an upstream (a "name", e.g. a channel) now.

States, per name:

- ``closed``: every request passes. Each recorded outcome counts toward two rules; the circuit
  opens when either holds after a record:
  1. ``failure_threshold`` consecutive failures (a success resets the run), or
  2. the failure-rate window holds at least ``min_requests`` requests and
     failures / requests >= ``failure_rate``.
  Both rules are checked after every record in closed state, successes included (as in
  resilience4j): a success that brings the window up to ``min_requests`` can open it.
  When both hold at once the reason names the consecutive run.
- ``open``: nothing passes for ``cooldown_s`` after ``opened_at``. Outcomes recorded meanwhile
  come from requests admitted before it opened and are ignored.
- ``half_open``: the cooldown has passed. ``allow()`` lets exactly one caller through (the probe),
  atomically across every process sharing the backend, and refuses the rest. A probe that never
  reports back (its process died) is given up ``cooldown_s`` after it was let through, and the next
  ``allow()`` becomes the probe. The first outcome recorded in half-open decides: a success closes
  the circuit and clears every counter; a failure re-opens it (``opened_at = now``, a fresh cooldown).
  ``record()`` cannot tell the probe's outcome from a late one (a request admitted before the
  circuit opened that outlived the cooldown); either is real evidence about the upstream.

While open or half-open, ``BreakerState`` reports the counters as they stood when it opened, so
they explain ``reason``.

The failure-rate window is a ring of ``BUCKETS`` (10) buckets, each ``window_s / 10`` wide, keyed by
``floor(now / width)``. A window sum covers the current bucket and the nine before it, so an outcome
counts for between 0.9 x ``window_s`` and ``window_s`` after it was recorded (at most one bucket,
10% of the window, of imprecision), with constant memory per name whatever the request rate.

Time is never read here: the caller passes ``now`` (seconds since the epoch) from its clock
(``imagegate.clock``). Both backends run the same arithmetic, so they agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

BUCKETS = 10

# Why a circuit is open: stored by both backends, turned into text by reason().
CAUSE_NONE = 0
CAUSE_CONSECUTIVE = 1
CAUSE_RATE = 2
CAUSE_PROBE = 3


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a circuit opens, and for how long."""

    failure_threshold: int = 5  # consecutive failures that open the circuit
    window_s: float = 60.0  # failure-rate window (a ring of 10 buckets of window_s / 10)
    failure_rate: float = 0.5  # open when failures/requests in the window >= this ...
    min_requests: int = 20  # ... and the window holds at least this many requests
    cooldown_s: float = 30.0  # open -> half-open after this; also how long a silent probe is waited for

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "min_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("window_s", "cooldown_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not 0 < self.failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], not {self.failure_rate!r}")

    @property
    def bucket_s(self) -> float:
        return self.window_s / BUCKETS


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One circuit as of ``now``."""

    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    window_requests: int  # closed: in the window at now; open/half-open: when it opened
    window_failures: int
    opened_at: float | None  # when it (last) opened; None when closed
    reason: str | None  # why it opened, e.g. "5 consecutive failures" / "failure rate 55% over 60 s"


class BreakerUnavailable(Exception):
    """The circuit-breaker backend cannot be reached (Redis down); the caller decides how to proceed."""


class CircuitBreaker(Protocol):
    async def allow(self, name: str, now: float) -> bool:
        """Whether a request may go to ``name`` now.

        closed: True. open: False until cooldown has passed, then True for exactly ONE caller
        (the half-open probe; atomically, across replicas) and False for the others until that
        probe is recorded. half_open with its probe in flight: False. A probe that never reports
        back (its process died) is given up after cooldown_s, letting another probe through.
        Raises BreakerUnavailable when the backend cannot be reached.
        """
        ...

    async def record(self, name: str, ok: bool, now: float) -> BreakerState:
        """Record one request's outcome and return the circuit's state after it.

        A success closes a half-open circuit (and resets counters); a failure of the probe
        re-opens it (opened_at = now). In closed state, failures count toward both rules.
        Raises BreakerUnavailable when the backend cannot be reached.
        """
        ...

    async def state(self, name: str, now: float) -> BreakerState:
        """The circuit as of ``now``, changing nothing (a name never seen is closed and empty)."""
        ...

    async def reset(self, name: str) -> None:
        """Operator action: close the circuit and clear every counter."""
        ...

    async def close(self) -> None:
        """Free connections; the breaker is unusable afterwards."""
        ...


@dataclass
class Circuit:
    """One name's stored record, the same in both backends (Redis keeps it as one hash)."""

    opened_at: float | None = None  # None: closed
    probe_at: float | None = None  # when the half-open probe was let through
    cause: int = CAUSE_NONE
    consecutive: int = 0
    # Window totals frozen when the circuit opened (reported while open).
    opened_requests: int = 0
    opened_failures: int = 0
    # Ring slot -> (bucket number, requests, failures).
    buckets: dict[int, tuple[int, int, int]] = field(default_factory=dict)


def bucket_number(now: float, config: BreakerConfig) -> int:
    return math.floor(now / config.bucket_s)


def window_totals(circuit: Circuit, now: float, config: BreakerConfig) -> tuple[int, int]:
    """(requests, failures) in the buckets that are no more than BUCKETS - 1 behind now's."""
    oldest = bucket_number(now, config) - BUCKETS + 1
    requests = failures = 0
    for number, r, f in circuit.buckets.values():
        if number >= oldest:
            requests, failures = requests + r, failures + f
    return requests, failures


def opening_cause(consecutive: int, requests: int, failures: int, config: BreakerConfig) -> int:
    """CAUSE_NONE when a closed circuit stays closed, else the rule that opens it."""
    if consecutive >= config.failure_threshold:
        return CAUSE_CONSECUTIVE
    if requests >= config.min_requests and failures / requests >= config.failure_rate:
        return CAUSE_RATE
    return CAUSE_NONE


def view(circuit: Circuit, now: float, config: BreakerConfig) -> BreakerState:
    """The public BreakerState of a stored circuit as of ``now``."""
    if circuit.opened_at is None:
        requests, failures = window_totals(circuit, now, config)
        return BreakerState("closed", circuit.consecutive, requests, failures, None, None)
    cooling = now < circuit.opened_at + config.cooldown_s
    state: Literal["open", "half_open"] = "open" if cooling else "half_open"
    return BreakerState(
        state,
        circuit.consecutive,
        circuit.opened_requests,
        circuit.opened_failures,
        circuit.opened_at,
        reason(circuit, config),
    )


def reason(circuit: Circuit, config: BreakerConfig) -> str:
    if circuit.cause == CAUSE_CONSECUTIVE:
        return f"{circuit.consecutive} consecutive failures"
    if circuit.cause == CAUSE_RATE and circuit.opened_requests:
        rate = 100 * circuit.opened_failures / circuit.opened_requests
        return f"failure rate {rate:.0f}% over {config.window_s:g} s"
    return "half-open probe failed"
