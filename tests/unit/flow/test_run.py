"""Every branch of the request path (flow/run.py and flow/settlement.py), built from the storage
ports' in-memory fakes (tests/fakes/stores.py): no database, no HTTP server. The rate limiter,
breaker, router and placeholder engine are the real ones; test engines stand in for providers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from imagegate.breakers import BreakerConfig, build_circuit_breaker
from imagegate.clock import ManualClock
from imagegate.config import Settings
from imagegate.domain import EngineEvent, FinalImage, ImageJob, PartialImage
from imagegate.engines.fetch import client_fetcher
from imagegate.engines.registry import EngineRegistry, Route, build_registry
from imagegate.errors import (
    Conflict,
    GatewayError,
    InsufficientQuota,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    status_of,
)
from imagegate.flow.prepare import Preparer
from imagegate.flow.request import ImageRequest
from imagegate.flow.route import RetryPolicy, Router
from imagegate.flow.run import ImageFlow, Outcome, RequestContext
from imagegate.flow.store_image import SealFailed
from imagegate.images.tokens import PARTIAL_IMAGE_TOKENS
from imagegate.limits.local import LocalRateLimiter
from imagegate.pricing import default_prices
from imagegate.storage.signing import UrlSigner
from tests.fakes.stores import FakeStores
from tests.imaging import png

pytestmark = pytest.mark.anyio
LIST = default_prices()["gpt-image-1"]
BODY = {"prompt": "a red fox", "size": "64x64", "quality": "low", "output_format": "png"}
CREDIT = 10_000_000


class Harness:
    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        overrides.setdefault("placeholder_price", LIST)
        self.settings = Settings(data_dir=tmp_path, create_initial_key=False, **overrides)
        self.clock = ManualClock()
        self.stores = FakeStores.new(self.clock)
        self.limiter = LocalRateLimiter(lease_ttl_s=self.settings.reservation_timeout_s)
        self.http = httpx.AsyncClient()
        breaker = build_circuit_breaker(None, BreakerConfig())
        self.flow = ImageFlow(
            settings=self.settings,
            stores=self.stores,
            signer=UrlSigner("s" * 64, 3600, self.clock),
            registry=build_registry(self.settings),
            limiter=self.limiter,
            router=Router(breaker, self.clock, RetryPolicy(backoff_s=0.0), on_disable=_never),
            prepare=Preparer(self.settings, client_fetcher(self.settings)),
            clock=self.clock,
        )
        self.secret = "sk-ig-unit-test-key-000000"
        self.key = self.stores.keys.add(self.secret)
        self.stores.credits.balances[self.key.id] = CREDIT
        self.requests = 0

    def serve(self, model: str, *engines: Any) -> None:
        """Route `model` to these engines (in this order), instead of the placeholder."""
        registry = EngineRegistry()
        for priority, engine in enumerate(reversed(engines)):
            registry.add(Route(model, engine, priority=priority))
        self.flow.registry = registry

    async def handle(
        self, body: dict[str, Any] | None = None, idem: str | None = None, key: Any = None
    ) -> Outcome:
        self.requests += 1
        ctx = RequestContext(f"req_{self.requests}", "http://127.0.0.1:9", idem)
        return await self.flow.handle(ImageRequest("generation", dict(body or BODY)), key or self.key, ctx)

    @property
    def balance(self) -> int:
        return self.stores.credits.balances[self.key.id]

    def leases_held(self) -> int:
        state = self.limiter._records.get(str(self.key.id))
        return len(state.leases) if state else 0

    def assert_released(self) -> None:
        assert self.stores.in_flight.active == 0
        assert self.leases_held() == 0
        assert all(s != "held" for s in self.stores.credits.status.values())


async def _never(*_args: object) -> None:
    raise AssertionError("no channel here")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, tiers={"internal": {"concurrency": 2}})
    yield harness
    await harness.http.aclose()


class Scripted:
    """A test engine: yields pixels-encoded finals (and partials), after `delay`, or fails."""

    name = "scripted"

    def __init__(
        self,
        fail: BaseException | None = None,
        delay: float = 0.0,
        fail_after: int | None = None,
        partials: int = 0,
    ) -> None:
        self.fail, self.delay, self.fail_after, self.partials = fail, delay, fail_after, partials
        self.runs = 0

    def describe(self) -> str:
        return "a scripted test engine"

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        self.runs += 1
        sent = 0
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None and self.fail_after is None:
            raise self.fail
        for index in range(job.n):
            for p in range(self.partials if job.stream else 0):
                if self.fail is not None and sent == self.fail_after:
                    raise self.fail
                yield PartialImage(index=index, partial_index=p, encoded=png(8, 8))
                sent += 1
            if self.fail is not None and sent == self.fail_after:
                raise self.fail
            yield FinalImage(index=index, encoded=png(8, 8, seed=index), media_type="image/png")
            sent += 1


# -- success ----------------------------------------------------------------------------------------


async def test_a_request_is_charged_its_quote_recorded_once_and_releases_everything(h: Harness) -> None:
    out = await h.handle()
    assert out.body is not None and len(out.body["data"]) == 1
    [record] = h.stores.usage.records
    assert (record.status, record.error_code, record.images, record.engine) == (200, None, 1, "placeholder")
    usage = out.body["usage"]
    expected = 5 * usage["input_tokens"] + 40 * usage["output_tokens"]
    assert record.cost_micros == expected == CREDIT - h.balance
    assert out.headers == {}  # the internal tier: no request limits to report
    [name] = h.stores.blobs.indexed  # the image's row was written in the unit of work
    assert name in out.body["data"][0]["url"]
    h.assert_released()


async def test_the_placeholder_is_free_unless_priced(tmp_path: Path) -> None:
    free = Harness(tmp_path, placeholder_price=Settings.model_fields["placeholder_price"].default_factory())
    out = await free.handle()
    assert out.body is not None and free.balance == CREDIT and free.stores.usage.records[0].cost_micros == 0
    free.serve("gpt-image-1", Scripted())  # any other engine is billed at the model's list price
    await free.handle()
    assert free.balance < CREDIT
    await free.http.aclose()


# -- refused before anything is reserved ------------------------------------------------------------


async def test_a_validation_error_is_recorded_and_reserves_nothing(h: Harness) -> None:
    with pytest.raises(InvalidRequest) as info:
        await h.handle({"prompt": "x", "size": "13x13"})
    [record] = h.stores.usage.records
    assert (record.status, record.error_code) == (400, info.value.code)
    assert h.stores.credits.held == {} and h.balance == CREDIT
    h.assert_released()


async def test_a_model_the_key_may_not_use_is_404(h: Harness) -> None:
    key = h.stores.keys.add("sk-ig-limited-models-0000", allowed_models=("gpt-image-1-mini",))
    h.stores.credits.balances[key.id] = CREDIT
    with pytest.raises(ModelNotFound):
        await h.handle(key=key)
    assert h.stores.usage.records[0].status == 404 and h.stores.credits.held == {}


async def test_too_little_credit_is_429_and_gives_back_the_lease(h: Harness) -> None:
    h.stores.credits.balances[h.key.id] = 1
    with pytest.raises(InsufficientQuota):
        await h.handle()
    assert h.stores.usage.records[0].error_code == "insufficient_quota"
    h.assert_released()


async def test_over_the_rate_limit_is_429(tmp_path: Path) -> None:
    h = Harness(tmp_path, tiers={"internal": {"rpm": 1}})
    await h.handle()
    with pytest.raises(RateLimited) as info:
        await h.handle()
    assert info.value.headers["retry-after"] == "60"
    assert [r.status for r in h.stores.usage.records] == [200, 429] and len(h.stores.credits.held) == 1
    h.assert_released()
    await h.http.aclose()


# -- Idempotency-Key --------------------------------------------------------------------------------


async def test_a_retry_replays_without_a_second_charge_or_record(h: Harness) -> None:
    first = await h.handle(idem="k1")
    spent = CREDIT - h.balance
    again = await h.handle(idem="k1")
    assert again.headers == {"idempotent-replayed": "true"}
    assert again.body is not None and first.body is not None
    assert again.body["data"][0]["b64_json"] == first.body["data"][0]["b64_json"]
    assert CREDIT - h.balance == spent and len(h.stores.usage.records) == 1
    with pytest.raises(Conflict) as info:
        await h.handle({**BODY, "prompt": "something else"}, idem="k1")
    assert info.value.code == "idempotency_key_reused"
    h.assert_released()


async def test_a_key_still_running_is_409_in_progress(h: Harness) -> None:
    h.serve("gpt-image-1", Scripted(delay=0.3))
    first = asyncio.create_task(h.handle(idem="k2"))
    await asyncio.sleep(0.1)
    with pytest.raises(Conflict) as info:
        await h.handle(idem="k2")
    assert info.value.code == "idempotency_key_in_progress"
    await first
    assert (await h.handle(idem="k2")).headers == {"idempotent-replayed": "true"}


async def test_a_dead_attempts_claim_expires_with_the_reservation_timeout(h: Harness) -> None:
    await h.stores.claims.begin(h.key.id, "k3", "another-body", h.settings.reservation_timeout_s)
    with pytest.raises(Conflict):
        await h.handle(idem="k3")
    h.clock.advance(h.settings.reservation_timeout_s + 1)
    assert (await h.handle(idem="k3")).body is not None


# -- failures after the reservation -----------------------------------------------------------------


async def test_an_engine_failure_refunds_records_and_lets_go_of_the_claim(h: Harness) -> None:
    h.serve("gpt-image-1", Scripted(fail=UpstreamError("down", status=502, retryable=False, channel="t")))
    with pytest.raises(UpstreamError):
        await h.handle(idem="k4")
    assert h.balance == CREDIT
    [record] = h.stores.usage.records
    assert (record.status, record.cost_micros) == (502, 0)
    assert "k4" not in {k for _, k in h.stores.claims.rows}
    h.assert_released()


async def test_an_engine_bug_is_a_clear_500_and_refunded(h: Harness) -> None:
    h.serve("gpt-image-1", Scripted(fail=ZeroDivisionError("bug")))
    with pytest.raises(GatewayError) as info:
        await h.handle()
    assert (
        status_of(info.value) == 500 and "scripted" in info.value.message and "bug" not in info.value.message
    )
    assert h.balance == CREDIT
    h.assert_released()


async def test_a_retryable_failure_fails_over_to_the_next_engine(h: Harness) -> None:
    broken, good = Scripted(fail=UpstreamError("busy", status=503, retryable=True, channel="t")), Scripted()
    h.serve("gpt-image-1", broken, good)
    out = await h.handle()
    assert out.body is not None and (broken.runs, good.runs) == (1, 1)
    assert h.stores.usage.records[0].attempts == 2


async def test_a_final_transaction_that_fails_refunds_and_releases_with_a_clear_503(h: Harness) -> None:
    h.stores.unit.fail_next = RuntimeError("value too long for type character varying(50)")
    with pytest.raises(ServiceUnavailable) as info:
        await h.handle(idem="k5")
    assert "not charged" in info.value.message
    assert h.balance == CREDIT
    [record] = h.stores.usage.records  # written alone by the fallback
    assert (record.status, record.error_code, record.cost_micros) == (503, "not_recorded", 0)
    assert "k5" not in {k for _, k in h.stores.claims.rows}
    h.assert_released()
    assert (await h.handle(idem="k5")).body is not None  # the same key runs again


class SecondSealFails:
    """A Sealer whose second image cannot be sealed (c2pa refusing it, say)."""

    def __init__(self) -> None:
        self.calls = 0

    def seal(self, data: bytes, fmt: str, origin: Any) -> bytes:  # noqa: ARG002
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("c2pa refused the image")
        return data + b"sealed"


async def test_an_image_that_cannot_be_sealed_is_a_500_refunded_and_writes_no_blob(h: Harness) -> None:
    h.flow.sealer = SecondSealFails()  # type: ignore[assignment]
    with pytest.raises(SealFailed):  # the app answers it as a 500 internal_error
        await h.handle({**BODY, "n": 2}, idem="k6")
    assert h.balance == CREDIT
    [record] = h.stores.usage.records
    assert (record.status, record.error_code, record.cost_micros) == (500, "internal_error", 0)
    assert h.stores.blobs.written == {}  # the first image, sealed, was never written: no orphan
    assert "k6" not in {k for _, k in h.stores.claims.rows}
    h.assert_released()


async def test_when_the_final_transaction_and_the_refund_both_fail_one_record_is_written(h: Harness) -> None:
    h.stores.unit.fail_next = RuntimeError("the database went away")
    h.stores.credits.fail_release = RuntimeError("still away")
    with pytest.raises(ServiceUnavailable):
        await h.handle()
    [record] = h.stores.usage.records  # not a second one as the settlement ends
    assert (record.status, record.error_code, record.cost_micros) == (503, "not_recorded", 0)
    assert h.balance < CREDIT  # still held: the sweeper releases it when it expires


async def test_a_cancelled_request_is_refunded_and_recorded_as_499(h: Harness) -> None:
    h.serve("gpt-image-1", Scripted(delay=5))
    task = asyncio.create_task(h.handle())
    await asyncio.sleep(0.1)
    assert h.stores.in_flight.active == 1 and h.leases_held() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.balance == CREDIT
    [record] = h.stores.usage.records
    assert (record.status, record.error_code) == (499, "client_disconnected")
    h.assert_released()


async def test_a_slow_request_renews_its_reservation_lease_and_claim(tmp_path: Path) -> None:
    h = Harness(tmp_path, reservation_timeout_s=1, tiers={"internal": {"concurrency": 1}})
    h.serve("gpt-image-1", Scripted(delay=1.2))
    out = await h.handle(idem="slow")
    assert out.body is not None
    assert len(h.stores.credits.renewed) >= 2  # every third of the timeout
    assert h.stores.credits.charged and all(s == "settled" for s in h.stores.credits.status.values())
    h.assert_released()
    await h.http.aclose()


# -- streams ----------------------------------------------------------------------------------------


async def _events(out: Outcome, take: int | None = None) -> list[dict[str, Any]]:
    assert out.events is not None
    got: list[dict[str, Any]] = []
    async for event in out.events:
        got.append(event)
        if take is not None and len(got) == take:
            break
    await out.events.aclose()  # type: ignore[attr-defined]
    return got


STREAM = {**BODY, "stream": True, "partial_images": 2, "n": 2}


async def test_a_stream_is_settled_for_its_images(h: Harness) -> None:
    events = await _events(await h.handle(STREAM))
    kinds = [e["type"] for e in events]
    assert (
        kinds.count("image_generation.completed") == 2 and kinds.count("image_generation.partial_image") == 4
    )
    [record] = h.stores.usage.records
    assert (record.status, record.images) == (200, 2) and record.cost_micros == CREDIT - h.balance > 0
    h.assert_released()


async def test_a_client_that_hangs_up_pays_for_the_partial_images_it_received(h: Harness) -> None:
    h.serve("gpt-image-1", Scripted(partials=3, delay=0.0))
    events = await _events(await h.handle({**STREAM, "n": 1, "partial_images": 3}), take=3)
    assert [e["type"] for e in events] == ["image_generation.partial_image"] * 3
    [record] = h.stores.usage.records
    assert (record.status, record.error_code, record.images) == (499, "client_disconnected", 0)
    # The third was handed over when the consumer left: two were surely received.
    assert record.image_out in (2 * PARTIAL_IMAGE_TOKENS, 3 * PARTIAL_IMAGE_TOKENS) and record.text_in > 0
    assert record.cost_micros == CREDIT - h.balance == 5 * record.text_in + 40 * record.image_out
    h.assert_released()


async def test_a_stream_broken_off_after_an_image_is_an_error_event_and_charges_that_image(
    h: Harness,
) -> None:
    h.serve(
        "gpt-image-1",
        Scripted(
            partials=1, fail=UpstreamError("cut", status=502, retryable=True, channel="t"), fail_after=2
        ),
    )
    events = await _events(await h.handle({**STREAM, "partial_images": 1}))
    assert [e["type"] for e in events] == [
        "image_generation.partial_image",
        "image_generation.completed",
        "error",
    ]
    [record] = h.stores.usage.records
    assert (record.status, record.images) == (502, 1)
    assert record.image_out > 0 and record.text_in > 0  # one image's share (input tokens on the first)
    assert CREDIT - h.balance == record.cost_micros > 0
    h.assert_released()


async def test_a_stream_that_fails_before_its_first_event_raises_with_its_status(h: Harness) -> None:
    h.serve("gpt-image-1", Scripted(fail=UpstreamError("no", status=400, retryable=False, channel="t")))
    with pytest.raises(UpstreamError):
        await h.handle(STREAM)
    assert h.balance == CREDIT and h.stores.usage.records[0].status == 400
    h.assert_released()


async def test_concurrent_requests_never_overspend(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.handle()
    price = CREDIT - h.balance
    h.stores.credits.balances[h.key.id] = 5 * price
    results: list[str] = []

    async def one() -> None:
        try:
            await h.handle()
            results.append("ok")
        except InsufficientQuota:
            results.append("quota")

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(one)
    assert results.count("ok") == 5 and h.balance == 0
    h.assert_released()
    await h.http.aclose()
