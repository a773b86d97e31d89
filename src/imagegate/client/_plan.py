"""The sans-IO core's vocabulary: a plan is a generator that yields what it wants done.

A plan yields `Request` (send it; the driver sends back a `Reply` or a `Failure`) and `Sleep`
(wait; the driver sends back None), and finally returns its value. `Client` and `AsyncClient`
differ only in the driver that runs plans (`_transport.py`), so retries, caching, pricing and
monitoring are written once. `send` is the retry loop every plan uses.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from imagegate.client._errors import APIConnectionError, APITimeoutError, make_status_error
from imagegate.client._retry import RetryPolicy, backoff_delay, retry_delay, should_retry

T = TypeVar("T")

FilePart = tuple[str, tuple[str, bytes, str]]  # (field, (filename, data, content type))


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request to send; `url` is relative to the base URL unless absolute."""

    method: str
    url: str
    headers: Mapping[str, str]
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Sequence[FilePart] | None = None
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds before going on."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: the whole body, or (a successful streamed request) the open response."""

    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    stream: Any = None


@dataclass(frozen=True, slots=True)
class Failure:
    """No HTTP answer: the connection failed or the request timed out."""

    message: str
    timeout: bool = False


Action = Request | Sleep
Outcome = Reply | Failure | None
Plan = Generator[Action, Outcome, T]
# Sees every HTTP answer; for one that will be retried it may name the least wait before the retry.
Observer = Callable[[int, Mapping[str, str]], float | None]


@dataclass(frozen=True, slots=True)
class Env:
    """The injectable outside world of a plan: wall clock and random numbers."""

    clock: Callable[[], float]
    random: Callable[[], float]


def send(request: Request, policy: RetryPolicy, env: Env, observe: Observer | None = None) -> Plan[Reply]:
    """Send `request`, retrying per `policy`; return the first success or raise the last error.

    Every attempt carries the same headers (so the same Idempotency-Key) plus `x-retry-count`.
    `observe(status, headers)` sees every HTTP answer, retried ones included (rate adaptation),
    and may lengthen the wait before a retry. An answer asking for a longer wait than
    `policy.max_retry_after` (a per-day limit, hours away) is raised at once, saying when.
    """
    for attempt in itertools.count():
        headers = {**request.headers, "x-retry-count": str(attempt)}
        outcome = yield dataclasses.replace(request, headers=headers)
        if isinstance(outcome, Reply):
            at_least = observe(outcome.status, outcome.headers) if observe is not None else None
            if outcome.status < 400:
                return outcome
            now = env.clock()
            error = make_status_error(outcome.status, outcome.headers, outcome.body, now=now)
            if attempt >= policy.max_retries or not should_retry(outcome.status, outcome.headers, error.code):
                raise error
            if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                raise error.not_retried()
            delay = max(
                retry_delay(attempt, outcome.headers, policy, now=now, random=env.random), at_least or 0.0
            )
        elif isinstance(outcome, Failure):
            if attempt >= policy.max_retries:
                raise (APITimeoutError if outcome.timeout else APIConnectionError)(outcome.message)
            delay = backoff_delay(attempt, policy, env.random)
        else:  # pragma: no cover - a driver bug
            raise TypeError(f"a driver answered a Request with {outcome!r}")
        yield Sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
