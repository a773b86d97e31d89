"""Stage: run a job on its model's routes, with failover, backoff and circuit breaking.

Contract: `Router.run(job, routes, report)` yields the engine events of the first route that
succeeds. Routes are tried highest priority first, weighted-random among equal priorities;
a channel whose circuit is open is skipped. A retryable failure (connection error, timeout,
408, 429, 5xx, malformed body) moves to the next route after an exponential, jittered
backoff, up to `upstream_max_attempts` attempts and `upstream_deadline_s` in total (an attempt
still waiting for its first event at the deadline is abandoned); a 4xx is
the client's fault and is raised at once (relayed unchanged). Once an engine has yielded its
first event there is no failover: the failure surfaces to the client. An upstream 401/403 or
out-of-balance answer disables its channel (`on_disable`). When every route fails or is
open: NoRouteAvailable (503), naming no channel or secret. `report` records the channel that
answered and the number of attempts (for usage records and operator costs).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio

from imagegate.breakers.base import BreakerUnavailable, CircuitBreaker
from imagegate.clock import Clock
from imagegate.domain import EngineEvent, ImageJob
from imagegate.engines.registry import Route
from imagegate.errors import EngineFailed, NoRouteAvailable, UpstreamError

log = logging.getLogger("imagegate.route")


class DeadlineAbort(UpstreamError):
    """An attempt still waiting for its first event when the request's deadline came: not the
    channel's failure (its breaker does not count it)."""


@dataclass
class RouteReport:
    route: Route | None = None
    attempts: int = 0
    maybe_billed: int = 0  # failed attempts the provider may have charged for (UpstreamError.maybe_billed)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    deadline_s: float = 300.0
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Exponential backoff with jitter (0.5-1.0 of the step); a Retry-After wins if longer."""
        step: float = min(self.backoff_s * 2.0 ** (attempt - 1), self.backoff_max_s)
        delay = step * (0.5 + rng.random() / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay


class Router:
    def __init__(
        self,
        breaker: CircuitBreaker,
        clock: Clock,
        policy: RetryPolicy,
        on_disable: Callable[[str, str], Awaitable[None]],  # (channel name, reason)
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.breaker = breaker
        self.clock = clock
        self.policy = policy
        self.on_disable = on_disable
        self.rng = rng or random.Random()
        self.sleep = sleep

    def order(self, routes: list[Route]) -> list[Route]:
        """Priority descending; within a priority, a weighted random order (Efraimidis-Spirakis)."""
        keyed = [
            (-r.priority, -(self.rng.random() ** (1.0 / max(1, r.weight))), i, r)
            for i, r in enumerate(routes)
        ]
        return [r for *_, r in sorted(keyed)]

    async def run(
        self, job: ImageJob, routes: list[Route], report: RouteReport
    ) -> AsyncIterator[EngineEvent]:
        if not routes:
            raise NoRouteAvailable(f"No enabled channel or engine serves the model '{job.model}'.")
        ordered = self.order(routes)
        deadline = time.monotonic() + self.policy.deadline_s
        last: EngineFailed | None = None
        disabled: set[str] = set()  # channels this request took out of service: never retried in it
        forced = False  # every circuit was open: the least-failing routes are tried anyway
        while self._budget_left(report, deadline):
            tried = False
            for position, route in enumerate(ordered, 1):
                if not self._budget_left(report, deadline):
                    break
                if not await self._may_try(route, disabled, forced):
                    continue  # disabled in this request, or its circuit is open: not an attempt
                tried = True
                report.attempts += 1
                report.route = route
                started = False
                events = route.engine.run(job)
                try:
                    first = await self._first(events, deadline, route)
                    started = True
                    yield first
                    async for event in events:
                        yield event
                except EngineFailed as exc:
                    await self._failed(route, exc, report)
                    if exc.disable_reason and route.breaker_name:
                        disabled.add(route.breaker_name)
                    if started or not exc.retryable:
                        raise
                    log.warning("route %s failed (%s); trying the next", route.engine.name, exc.message)
                    last = exc
                    await self._back_off(exc, report, deadline, last_route=position == len(ordered))
                    continue
                finally:
                    await events.aclose()  # type: ignore[attr-defined]
                await self._record(route, ok=True)
                return
            if not tried:
                if forced or all(r.breaker_name in disabled for r in ordered):
                    break
                # Every circuit is open: rather than a 503 at once, try the routes that fail least
                # (a half-failing provider still serves most requests within the attempt budget).
                ordered, forced = await self._least_failing(ordered), True
        raise NoRouteAvailable(
            f"Every upstream for the model '{job.model}' failed or is cooling down "
            f"({report.attempts} attempt{'s' if report.attempts != 1 else ''}). Try again shortly."
            + (f" Last error: {last.message}" if last else "")
        )

    async def _back_off(
        self, exc: EngineFailed, report: RouteReport, deadline: float, last_route: bool
    ) -> None:
        if self._budget_left(report, deadline):
            # A Retry-After speaks for the channel that sent it: it delays a retry of the routes
            # already tried (the next round), never the move to another channel.
            retry_after = exc.retry_after_s if last_route else None
            await self.sleep(self.policy.delay(report.attempts, retry_after, self.rng))

    async def _may_try(self, route: Route, disabled: set[str], forced: bool) -> bool:
        if route.breaker_name in disabled:
            return False
        return forced or await self._allowed(route)

    async def _least_failing(self, routes: list[Route]) -> list[Route]:
        """The routes by their failure rate over the breaker's window, lowest first (stable)."""
        now = self.clock.now()

        async def rate(route: Route) -> float:
            if route.breaker_name is None:
                return 0.0
            try:
                state = await self.breaker.state(route.breaker_name, now)
            except BreakerUnavailable:
                return 0.0
            return state.window_failures / state.window_requests if state.window_requests else 1.0

        rates = [await rate(r) for r in routes]
        return [r for _, _, r in sorted(zip(rates, range(len(routes)), routes, strict=True))]

    async def _failed(self, route: Route, exc: EngineFailed, report: RouteReport) -> None:
        """The bookkeeping of a failed attempt: the maybe-billed count, the channel's breaker (not
        for a deadline abort, which is no fault of the channel), disabling a refusing channel."""
        report.maybe_billed += exc.maybe_billed
        if not isinstance(exc, DeadlineAbort):
            await self._record(route, ok=not exc.retryable)
        if exc.disable_reason and route.channel is not None:
            await self.on_disable(route.channel, exc.disable_reason)

    async def _first(self, events: AsyncIterator[EngineEvent], deadline: float, route: Route) -> EngineEvent:
        """The route's first event, within what is left of the deadline: until then the request
        can still fail over; after it, the engine (its channel's own timeout) has the rest."""
        who = route.channel or route.engine.name
        timeout = asyncio.timeout(max(0.0, deadline - time.monotonic()))
        try:
            async with timeout:
                first = await anext(events, None)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise DeadlineAbort(
                f"The upstream provider did not answer within the request's deadline "
                f"({self.policy.deadline_s:g} s).",
                status=504,
                retryable=True,
                # A provider had the request (it may bill it); a local engine costs nothing.
                channel=who,
                maybe_billed=route.channel is not None,
            ) from None
        if first is None:
            raise UpstreamError("The engine ended without an image.", status=502, retryable=True, channel=who)
        return first

    def _budget_left(self, report: RouteReport, deadline: float) -> bool:
        """Attempts left, and time enough for one: an attempt started with a few ms to go would
        only be abandoned (a request the provider may bill, for nothing)."""
        floor = min(1.0, self.policy.deadline_s / 10)
        return report.attempts < self.policy.max_attempts and deadline - time.monotonic() >= floor

    async def _allowed(self, route: Route) -> bool:
        name = route.breaker_name
        if name is None:
            return True
        try:
            return await self.breaker.allow(name, self.clock.now())
        except BreakerUnavailable:
            return True  # without shared breaker state, still try: failover covers failures

    async def _record(self, route: Route, *, ok: bool) -> None:
        name = route.breaker_name
        if name is None:
            return
        try:
            await self.breaker.record(name, ok, self.clock.now())
        except BreakerUnavailable:
            pass
