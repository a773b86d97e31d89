"""How every request ends: `async with Settlement(...)` alone settles or refunds, records usage,
ends the Idempotency-Key claim and releases the concurrency lease, whatever happens inside it
(an error, a bug, a cancelled task, a client that hung up on a stream).

    enter      count the request in flight
    admitted   a timer renews the reservation, the lease and the claim every third of their
               timeout while the request runs (a slow provider never outlives them)
    finish     the success path of a non-streamed request: image rows, settlement and usage
               record in one transaction (the unit of work), then the response
    exit       not finished: settle what was delivered (a stream's images and partial images)
               or refund, with the usage record, in that same unit of work; then, each step
               attempted whatever the one before did: stop renewing, release the lease, complete
               or abandon the claim, leave the in-flight count

If the unit of work itself fails (a database error, a value the schema refuses) the settlement
falls back to the ledger alone, then to a usage record cut to fit, and says so in the log: the
key is charged exactly for what it received, or refunded, and nothing stays held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

import anyio

from imagegate.clock import Clock
from imagegate.errors import GatewayError, ServiceUnavailable, status_of
from imagegate.flow import reserve_quota
from imagegate.flow.ports import Kept, RequestObserver, RequestStores
from imagegate.flow.state import RequestState
from imagegate.flow.store_image import SealFailed
from imagegate.images.tokens import Usage
from imagegate.limits.base import RateLimiter
from imagegate.storage import bounds
from imagegate.storage.history import HistoryEntry
from imagegate.storage.usage import UsageRecord

log = logging.getLogger("imagegate.flow")


class Settlement:
    def __init__(
        self,
        state: RequestState,
        stores: RequestStores,
        limiter: RateLimiter,
        clock: Clock,
        timeout_s: float,
        keep_prompts: bool = True,
        observer: RequestObserver | None = None,
    ) -> None:
        self.state = state
        self.observer = observer
        self.keep_prompts = keep_prompts  # in the image history (settings.history_prompts)
        self.stores = stores
        self.limiter = limiter
        self.clock = clock
        self.timeout_s = timeout_s
        self._in_flight = stores.in_flight.request()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False  # _close ran: the request has its record, whatever the ledger did
        self._renewing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Settlement:
        self._in_flight.__enter__()
        return self

    def admitted(self) -> None:
        """The lease and reservation are held from now: keep them alive while the request runs."""
        self._timer = asyncio.get_running_loop().call_later(self.timeout_s / 3, self._renew_soon)

    def hand_off(self) -> None:
        """The request became a queued job (flow/jobs.py): its reservation stays held for the job's
        run, which settles it; this request ends without a charge, a refund or a usage record."""
        self.state.handed_off = True

    async def finish(self, write: Callable[[], Kept], write_bytes: int = 0) -> Kept:
        """End a non-streamed request that succeeded: `write` its images (about `write_bytes`),
        then the unit of work."""
        kept = await self._close(self.charge(), self.record(200, None), write, write_bytes)
        if kept is None:  # the ledger alone failed too: nothing charged, nothing served
            raise ServiceUnavailable(
                "The gateway could not record this request, so it was not charged "
                "and its images are not served. Try again shortly."
            )
        return kept

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        state = self.state
        with anyio.CancelScope(shield=True):
            try:
                # A replay was recorded the first time; a job's submission is settled by its run.
                if not (state.settled or self._closed) and state.replayed is None and not state.handed_off:
                    await self._end(exc)
            finally:
                self._stop_renewing()
                await self._release_lease()
                await self._end_claim()
                self._in_flight.__exit__(None, None, None)

    async def _end(self, exc: BaseException | None) -> None:
        state = self.state
        error = exc if isinstance(exc, GatewayError) else state.error
        if error is not None:
            status, code = status_of(error), error.code
        elif exc is None and (state.prepared is None or state.images == state.job.n):
            status, code = 200, None
        elif exc is None or isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            status, code = 499, "client_disconnected"
        else:
            status, code = 500, "internal_error"
        route = state.report.route
        if status == 499 and not state.engine_done and route is not None and route.channel is not None:
            state.report.maybe_billed += 1  # cut while the provider was making it: it may bill
        if state.reservation is None:  # ended before anything was reserved
            record = self.record(status, code)
            await _attempt("usage record", self.stores.usage.record, record)
            self._observe(record)
            return
        # A client that hung up pays for the partial images it received (as the provider bills them);
        # a stream the gateway or provider broke off pays only for its finished images.
        if status != 499:
            state.open_partials = 0
        delivered = state.sent and (state.images or state.open_partials)
        await self._close(self.charge() if delivered else None, self.record(status, code), None)

    async def _close(
        self, charge: int | None, record: UsageRecord, write: Callable[[], Kept] | None, write_bytes: int = 0
    ) -> Kept | None:
        """The unit of work. If it fails: the ledger alone (a response that cannot be served is
        refunded), then the usage record alone, cut to fit; None is returned."""
        state = self.state
        reservation = state.reservation
        assert reservation is not None
        self._closed = True  # once: an ending that failed here is not ended (and recorded) again
        try:
            history = self.history(record) if charge is not None else None
            kept, state.cost = await self.stores.unit.finish(
                reservation, charge, record, write, history, write_bytes
            )
        except (SealFailed, GatewayError):  # from `write`, before the transaction: nothing kept
            self._closed = False  # the exit ends the request as this error: a refund, a record
            raise
        except Exception:
            log.exception("request %s: its final transaction failed; settling it alone", state.ctx.request_id)
        else:
            state.settled = True
            self._observe(replace(record, cost_micros=state.cost))
            return kept
        if write is not None:  # the success path: its response will not be served
            charge = None
            record = replace(record, status=503, error_code="not_recorded")
        if charge is None:
            done = await _attempt("refund", self.stores.credits.release, reservation)
        else:
            done = await _attempt("settlement", self.stores.credits.settle, reservation, charge)
        state.cost = done if isinstance(done, int) and not isinstance(done, bool) else 0
        state.settled = done is not None  # else the sweeper releases the reservation later
        record = _fitted(replace(record, cost_micros=state.cost))
        await _attempt("usage record", self.stores.usage.record, record)
        self._observe(record)
        return None

    def _observe(self, record: UsageRecord) -> None:
        if self.observer is None:
            return
        try:
            prompt = self.state.prepared.job.prompt if self.state.prepared else None
            self.observer.ended(record, prompt)
        except Exception:
            log.exception("request %s: its observer failed", record.request_id)

    def charge(self) -> int:
        """What the delivered images cost the key, and what the channel costs the operator."""
        state = self.state
        assert state.prepared is not None
        prepared = state.prepared
        if not state.reported and not prepared.options.stream:
            state.usage = prepared.usage  # a local engine: our own token math is the usage
        usage = state.delivered_usage()
        route = state.report.route
        if route is not None and route.prices is not None:
            state.upstream_cost = reserve_quota.quote(
                route.prices, usage, prepared.job, state.images, 1_000_000
            )[0]
        return reserve_quota.quote(prepared.price, usage, prepared.job, state.images, state.multiplier_ppm)[1]

    def record(self, status: int, error_code: str | None) -> UsageRecord:
        state = self.state
        job = state.prepared.job if state.prepared else None
        route = state.report.route
        usage = state.delivered_usage() if state.reservation else Usage()
        return UsageRecord(
            request_id=state.ctx.request_id,
            key_id=state.key.id,
            created_at=self.clock.now(),
            endpoint="edits" if state.request.kind == "edit" else "generations",
            status=status,
            model=bounds.fit(job.model if job else None, bounds.MODEL_NAME),
            engine=bounds.fit(route.engine.name if route else None, bounds.ENGINE_NAME),
            params=_params(state) if job else {},
            images=state.images,
            text_in=usage.text_in,
            image_in=usage.image_in,
            image_out=usage.image_out,
            cost_micros=state.cost,
            latency_ms=int((time.perf_counter() - state.started) * 1000),
            error_code=error_code,
            channel=bounds.fit(route.channel if route else None, bounds.CHANNEL_NAME),
            upstream_cost_micros=state.upstream_cost,
            attempts=max(1, state.report.attempts),
            maybe_billed=state.report.maybe_billed,
        )

    def history(self, record: UsageRecord) -> HistoryEntry | None:
        """The image history's entry of a request that delivered images (its outputs: the
        streamed ones here, the others added by the unit of work as it indexes them)."""
        state = self.state
        if state.prepared is None or not (state.images or state.outputs or state.open_partials):
            return None
        job = state.prepared.job
        return HistoryEntry(
            request_id=record.request_id,
            key_id=record.key_id,
            created_at=record.created_at,
            model=record.model,
            engine=record.engine,
            channel=record.channel,
            prompt=job.prompt if self.keep_prompts else None,
            params=record.params,
            inputs=[img.source.sha256().hex() for img in job.inputs],
            outputs=list(state.outputs),
        )

    def _renew_soon(self) -> None:
        self._renewing = asyncio.get_running_loop().create_task(self._renew())
        self._timer = asyncio.get_running_loop().call_later(self.timeout_s / 3, self._renew_soon)

    async def _renew(self) -> None:
        state = self.state
        if state.reservation is not None:
            await _attempt(
                "reservation renewal", self.stores.credits.renew, state.reservation, self.timeout_s
            )
        if state.decision is not None and state.decision.lease is not None:
            await _attempt(
                "lease renewal", self.limiter.renew, str(state.key.id), state.decision.lease, self.clock.now()
            )
        if state.claimed and state.ctx.idempotency_key:
            await _attempt(
                "claim renewal",
                self.stores.claims.renew,
                state.key.id,
                state.ctx.idempotency_key,
                self.timeout_s,
            )

    def _stop_renewing(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._renewing is not None:
            self._renewing.cancel()

    async def _release_lease(self) -> None:
        decision = self.state.decision
        if decision is not None and decision.lease is not None:
            # A failure here is not fatal: the lease expires on its own (the lease TTL).
            await _attempt("lease release", self.limiter.release, str(self.state.key.id), decision.lease)

    async def _end_claim(self) -> None:
        state = self.state
        if not state.claimed or not state.ctx.idempotency_key:
            return
        if state.stored_response is not None:
            await _attempt(
                "claim completion",
                self.stores.claims.complete,
                state.key.id,
                state.ctx.idempotency_key,
                state.stored_response,
            )
        else:
            await _attempt(
                "claim abandonment", self.stores.claims.abandon, state.key.id, state.ctx.idempotency_key
            )


async def _attempt(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one step of the ending; a failure is logged (None returned), never raised, so the
    steps after it still run."""
    try:
        return await fn(*args)
    except Exception:
        log.exception("%s failed", what)
        return None


def _fitted(record: UsageRecord) -> UsageRecord:
    """A usage record whose texts fit the narrowest columns (the fallback after a refused one)."""

    def cut(value: str | None, size: int = 50) -> str | None:
        return value[:size] if value is not None else None

    return replace(
        record,
        model=cut(record.model),
        engine=cut(record.engine),
        channel=cut(record.channel),
        error_code=cut(record.error_code),
        params={},
    )


def _params(state: RequestState) -> dict[str, Any]:
    job = state.job
    return {
        "kind": job.kind,
        "n": job.n,
        "size": job.size,
        "quality": job.quality,
        "background": job.background,
        "output_format": job.output_format,
        "output_compression": job.output_compression,
        "moderation": job.moderation,
        "seed": job.seed,
        "partial_images": job.partial_images,
        "stream": job.stream,
        "input_images": len(job.images),
        "mask": job.mask is not None,
        "user": job.user,
    }
