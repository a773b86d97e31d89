"""The Router on its own: order, failover, backoff and Retry-After, breaker bookkeeping, disabling."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator

import anyio
import pytest

from imagegate.breakers import BreakerConfig, LocalCircuitBreaker
from imagegate.clock import ManualClock
from imagegate.domain import EngineEvent, FinalImage, ImageJob, PartialImage
from imagegate.engines.registry import Route
from imagegate.errors import NoRouteAvailable, UpstreamError
from imagegate.flow.route import RetryPolicy, Router, RouteReport

JOB = ImageJob(model="m", prompt="p")


class Scripted:
    """An engine that fails with the scripted errors, then yields one partial and one final image."""

    def __init__(self, name: str, *failures: UpstreamError | None, fail_after_partial: bool = False) -> None:
        self.name = name
        self.failures = list(failures)
        self.fail_after_partial = fail_after_partial
        self.calls = 0

    def describe(self) -> str:
        return self.name

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        self.calls += 1
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None and not self.fail_after_partial:
            raise failure
        yield PartialImage(index=0, partial_index=0, encoded=b"p")
        if failure is not None:
            raise failure
        yield FinalImage(index=0, encoded=self.name.encode())


def upstream_error(
    status: int = 500,
    *,
    retryable: bool = True,
    retry_after: float | None = None,
    disable: str | None = None,
    maybe_billed: bool = False,
) -> UpstreamError:
    return UpstreamError(
        f"answered {status}",
        status=status,
        retryable=retryable,
        channel="x",
        retry_after_s=retry_after,
        disable_reason=disable,
        maybe_billed=maybe_billed,
    )


def route(engine: Scripted, priority: int = 0, weight: int = 1) -> Route:
    return Route("m", engine, priority, weight, channel=engine.name)  # type: ignore[arg-type]


class Harness:
    def __init__(self, **policy: float) -> None:
        self.sleeps: list[float] = []
        self.disabled: list[tuple[str, str]] = []
        self.breaker = LocalCircuitBreaker(BreakerConfig(failure_threshold=2, cooldown_s=10))
        self.clock = ManualClock()

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        async def on_disable(channel: str, reason: str) -> None:
            self.disabled.append((channel, reason))

        self.router = Router(
            self.breaker,
            self.clock,
            RetryPolicy(**policy),
            on_disable,  # type: ignore[arg-type]
            rng=random.Random(7),
            sleep=sleep,
        )

    def run(self, routes: list[Route]) -> tuple[list[EngineEvent], RouteReport]:
        report = RouteReport()

        async def go() -> list[EngineEvent]:
            return [e async for e in self.router.run(JOB, routes, report)]

        return anyio.run(go), report


def test_order_is_by_priority_then_weighted_random() -> None:
    router = Harness().router
    low, heavy, light = Scripted("low"), Scripted("heavy"), Scripted("light")
    routes = [route(low, 0), route(heavy, 5, weight=3), route(light, 5, weight=1)]
    firsts = Counter(router.order(routes)[0].engine.name for _ in range(20_000))
    assert set(firsts) == {"heavy", "light"}
    assert firsts["heavy"] / 20_000 == pytest.approx(0.75, abs=0.015)
    assert all(router.order(routes)[-1].engine.name == "low" for _ in range(100))


def test_failover_backs_off_and_a_retry_after_waits_only_before_a_second_round() -> None:
    h = Harness(backoff_s=0.25, backoff_max_s=4, max_attempts=4)
    first = Scripted("first", upstream_error(429, retry_after=30))
    second = Scripted("second", upstream_error(429, retry_after=30))
    events, report = h.run([route(first, 10), route(second, 0)])
    assert isinstance(events[-1], FinalImage) and events[-1].encoded == b"first"
    assert (first.calls, second.calls, report.attempts, report.route.engine.name) == (2, 1, 3, "first")
    # 1st: first -> second, jittered 0.125-0.25 s (its Retry-After is not the second's business);
    # 2nd: second -> first again, a new round: Retry-After wins (capped at 4 s) over 0.25-0.5 s.
    assert 0.125 <= h.sleeps[0] <= 0.25 and h.sleeps[1] == 4
    assert len(h.sleeps) == 2


def test_no_failover_on_a_client_error_or_after_the_first_event() -> None:
    h = Harness()
    bad, spare = Scripted("bad", upstream_error(400, retryable=False)), Scripted("spare")
    with pytest.raises(UpstreamError) as info:
        h.run([route(bad, 1), route(spare)])
    assert info.value.status == 400 and spare.calls == 0 and h.sleeps == []
    cut, spare = Scripted("cut", upstream_error(502), fail_after_partial=True), Scripted("spare")
    with pytest.raises(UpstreamError):
        h.run([route(cut, 1), route(spare)])
    assert spare.calls == 0


def test_exhausted_routes_and_open_circuits() -> None:
    h = Harness(max_attempts=3)
    a, b = Scripted("a", *[upstream_error()] * 5), Scripted("b", *[upstream_error()] * 5)
    with pytest.raises(NoRouteAvailable) as info:
        h.run([route(a, 1), route(b)])
    assert "3 attempts" in info.value.message and (a.calls, b.calls) == (2, 1)
    # a failed twice in a row: its circuit is open (threshold 2); b once. Next: b is tried and opens
    # too; with every circuit open the request does not give up at once: the routes that fail least
    # get the attempts left (hardening: two half-failing channels served 19-26 % of requests).
    with pytest.raises(NoRouteAvailable):
        h.run([route(a, 1), route(b)])
    assert (a.calls, b.calls) == (3, 3)
    h.clock.advance(11)  # cooldown over: one probe each
    events, _ = h.run([route(Scripted("a"), 1), route(b)])
    assert events[-1].encoded == b"a"  # type: ignore[union-attr]


def test_a_refusing_channel_is_disabled_and_the_next_one_answers() -> None:
    h = Harness()
    refused = Scripted("refused", upstream_error(401, retryable=True, disable="key rejected"))
    events, report = h.run([route(refused, 1), route(Scripted("ok"))])
    assert events[-1].encoded == b"ok" and report.attempts == 2  # type: ignore[union-attr]
    assert h.disabled == [("refused", "key rejected")]


def test_a_channel_disabled_in_a_request_is_not_tried_again_in_it() -> None:
    h = Harness(max_attempts=4)
    refused = Scripted("refused", *[upstream_error(401, retryable=True, disable="key rejected")] * 4)
    failing = Scripted("failing", *[upstream_error()] * 4)
    with pytest.raises(NoRouteAvailable):
        h.run([route(refused, 1), route(failing)])
    assert (refused.calls, failing.calls) == (1, 3)  # was tried again in each round


def test_every_circuit_open_tries_the_least_failing_route_first() -> None:
    h = Harness(max_attempts=1)
    now = h.clock.now()

    async def history() -> None:
        for name, outcomes in (("bad", (True, False, False)), ("worse", (False, False))):
            for ok in outcomes:  # two failures in a row open each circuit (threshold 2)
                await h.breaker.record(f"channel:{name}", ok, now)

    anyio.run(history)
    worse, bad = Scripted("worse"), Scripted("bad")
    events, report = h.run([route(worse, 1), route(bad, 0)])  # the higher priority fails more
    assert events[-1].encoded == b"bad" and (worse.calls, bad.calls) == (0, 1)  # type: ignore[union-attr]


def test_no_routes() -> None:
    with pytest.raises(NoRouteAvailable):
        Harness().run([])


class Stalled(Scripted):
    """An engine that waits `seconds` before its first event (a provider that does not answer)."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(name)
        self.seconds = seconds

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        self.calls += 1
        await anyio.sleep(self.seconds)
        yield FinalImage(index=0, encoded=self.name.encode())


def test_an_attempt_still_waiting_at_the_deadline_is_abandoned() -> None:
    stalled, backup = Stalled("stalled", 60), Scripted("backup")
    harness = Harness(deadline_s=0.2, max_attempts=5)
    with pytest.raises(NoRouteAvailable) as info:
        harness.run([route(stalled, priority=1), route(backup)])
    assert stalled.calls == 1 and backup.calls == 0  # no time was left to try the backup
    assert "deadline (0.2 s)" in info.value.message


def test_an_engine_that_ends_without_an_image_fails_over() -> None:
    class Empty(Scripted):
        async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
            self.calls += 1
            return
            yield  # an async generator that yields nothing

    empty, backup = Empty("empty"), Scripted("backup")
    events, report = Harness().run([route(empty, priority=1), route(backup)])
    assert [type(e) for e in events] == [PartialImage, FinalImage] and report.attempts == 2


def test_attempts_the_provider_may_have_charged_for_are_counted() -> None:
    """A 500 is not charged; a timeout after the request went out may have been."""
    timed_out = Scripted("timed-out", upstream_error(502, maybe_billed=True))
    refused = Scripted("refused", upstream_error(500))
    _, report = Harness(max_attempts=5).run([route(timed_out, 2), route(refused, 1), route(Scripted("ok"))])
    assert (report.attempts, report.maybe_billed, report.route.engine.name) == (3, 1, "ok")  # type: ignore[union-attr]
    stalled = Stalled("stalled", 60)
    report = RouteReport()
    with pytest.raises(NoRouteAvailable):
        anyio.run(_drain, Harness(deadline_s=0.1).router, [route(stalled)], report)
    assert report.maybe_billed == 1  # abandoned at the deadline after sending


async def _drain(router: Router, routes: list[Route], report: RouteReport) -> None:
    async for _ in router.run(JOB, routes, report):
        pass
