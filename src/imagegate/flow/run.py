"""The request path, top to bottom.

    authenticate -> fetch_images -> validate -> moderate -> route -> idempotency
      -> rate_limit -> reserve_quota -> engine -> store_image -> settle -> respond

`ImageFlow` is built once in the composition root (http/app.py) and shared by every
request; it holds no per-request state. Whatever fails after the reservation refunds it in
full, releases the concurrency slot and leaves a usage record with the error code.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import httpx
import pybase64

from imagegate.channels import Channels, Prober
from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.domain import FinalImage, ImageJob, PartialImage
from imagegate.engines.registry import EngineRegistry, Route, build_registry
from imagegate.errors import EngineFailed, GatewayError, ModelNotFound, status_of
from imagegate.flow import authenticate as auth_stage
from imagegate.flow import (
    fetch_images,
    idempotency,
    moderate,
    rate_limit,
    reserve_quota,
    respond,
    settle,
    store_image,
    validate,
)
from imagegate.flow.database import Database
from imagegate.flow.request import ImageRequest, ResponseOptions
from imagegate.flow.route import Router, RouteReport
from imagegate.images.tokens import Usage, job_usage
from imagegate.limits.base import Decision, RateLimiter
from imagegate.pricing import price_for
from imagegate.storage.blobs import ImageStore
from imagegate.storage.channels import Channel, ChannelRepo
from imagegate.storage.db import journal_is_wal
from imagegate.storage.idempotency import IdempotencyRepo
from imagegate.storage.keys import ApiKey, KeyRepo
from imagegate.storage.ledger import Ledger, Reservation
from imagegate.storage.signing import UrlSigner
from imagegate.storage.usage import UsageRecord, UsageRepo

log = logging.getLogger("imagegate.flow")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    base_url: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that passed every check and is ready for its engine."""

    job: ImageJob
    options: ResponseOptions
    routes: list[Route]
    usage: Usage  # computed with our token tables from the resolved parameters
    max_usage: Usage  # the most an engine may report (quality 'auto' may become 'high')


@dataclass(frozen=True, slots=True)
class Admission:
    """What rate limiting and the reservation granted."""

    decision: Decision
    reservation: Reservation
    multiplier_ppm: int


@dataclass
class Trace:
    """What one request did, for its settlement and usage record."""

    started: float
    report: RouteReport = field(default_factory=RouteReport)
    usage: Usage = field(default_factory=Usage)
    reported: bool = False  # the engine reported usage (an upstream's own numbers)
    images: int = 0
    cost: int = 0
    upstream_cost: int | None = None

    def add_image(self, final: FinalImage, usage: Usage | None = None) -> None:
        """Count a delivered image and its usage (an engine's own, when it reports one)."""
        reported = final.extra.get("usage")
        if isinstance(reported, Usage):
            self.reported = True
            self.usage = self.usage + reported
        elif usage is not None:
            self.usage = self.usage + usage
        self.images += 1


@dataclass
class Outcome:
    """A JSON body or a stream of SSE events, with the headers to send."""

    body: dict[str, Any] | None = None
    events: AsyncIterator[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stores:
    keys: KeyRepo
    ledger: Ledger
    usage: UsageRepo
    idempotency: IdempotencyRepo
    images: ImageStore
    channels: ChannelRepo


class ImageFlow:
    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        signer: UrlSigner,
        registry: EngineRegistry,
        limiter: RateLimiter,
        router: Router,
        http: httpx.AsyncClient,
        upstream: aiohttp.ClientSession,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.keys = stores.keys
        self.images = stores.images
        self.signer = signer
        self.registry = registry
        self.limiter = limiter
        self.router = router
        self.upstream = upstream
        self.http = http
        self.clock = clock
        self._seeds = random.SystemRandom()
        self.prober = Prober(stores.channels, upstream, settings.channel_balance_probe_s)
        engine = stores.keys.engine
        self.db = Database(sqlite=engine.dialect.name == "sqlite", wal=journal_is_wal(engine))

    async def authenticate(self, authorization: str | None) -> ApiKey:
        return await auth_stage.authenticate(authorization, self.keys, self.db)

    async def handle(self, request: ImageRequest, key: ApiKey, ctx: RequestContext) -> Outcome:
        """Run one images request for `key`, from validation to the settled response."""
        self.db.active += 1  # until the response is ready (a stream counts itself until it ends)
        try:
            return await self._handle(request, key, ctx)
        finally:
            self.db.active -= 1

    async def _handle(self, request: ImageRequest, key: ApiKey, ctx: RequestContext) -> Outcome:
        trace = Trace(started=time.perf_counter())
        prepared: Prepared | None = None
        claimed = False
        try:
            prepared = await self.prepare(request, ctx.request_id)
            self._check_model(key, prepared.job.model)
            if ctx.idempotency_key and not prepared.options.stream:
                # Uploads are hashed from their temporary files (20 MB: about 40 ms): off the event loop.
                digest = await anyio.to_thread.run_sync(idempotency.body_hash, request) if request.uploads \
                    else idempotency.body_hash(request)
                stored = await idempotency.claim(
                    self.stores.idempotency, key.id, ctx.idempotency_key, digest, self.db,
                )
                if stored is not None:
                    body = await idempotency.replay(stored, self.images, self.signer, self._base(ctx))
                    return Outcome(body=body, headers={"idempotent-replayed": "true"})
                claimed = True
            admission = await self._admit(key, prepared, ctx)
        except GatewayError as exc:
            if claimed:
                await self._abandon(key, ctx)
            await self._record(key, ctx, request, prepared, trace, status_of(exc), exc.code)
            raise
        headers = rate_limit.headers(admission.decision)
        if prepared.options.stream:
            self.db.active += 1  # the stream's own count: _stream's finally gives it back
            events = self._stream(key, ctx, request, prepared, admission, trace)
            # Wait for the first event: a failure before it (every route down, an upstream 4xx) is
            # still an HTTP error with its own status, as for a request without `stream`.
            first = await anext(events, None)
            return Outcome(events=_prepend(first, events), headers=headers)
        try:
            finals, echo = await self._generate(prepared, trace)
            kept = await self._complete(key, ctx, request, prepared, admission, trace, finals)
        except BaseException as exc:
            await self._fail(key, ctx, request, prepared, admission, trace, exc, claimed)
            raise
        await self._finish(key, admission)
        body, names = self._response(prepared, self._base(ctx), trace, finals, kept, echo)
        if claimed:
            await self.db.run(self.stores.idempotency.complete, key.id, ctx.idempotency_key,
                              idempotency.stored_form(body, names))
        return Outcome(body=body, headers=headers)

    async def prepare(self, request: ImageRequest, request_id: str) -> Prepared:
        raw_images, raw_mask = await fetch_images.collect(request, self.http, self.settings)

        def check() -> tuple[ImageJob, ResponseOptions]:
            return validate.validate(
                request,
                raw_images,
                raw_mask,
                models=self.registry.models(),
                default_model=self.settings.default_model,
                new_seed=lambda: self._seeds.randrange(2**32),
                max_input_pixels=self.settings.max_input_pixels,
            )

        # Reading input images' headers is worth a worker thread; checking a plain generation's
        # fields (about 30 us) is not worth the hop (about 60 us).
        has_images = bool(raw_images) or raw_mask is not None
        job, options = await anyio.to_thread.run_sync(check) if has_images else check()
        moderate.check(job.prompt, job.moderation, self.settings.moderation_rules, request_id)
        routes = self.registry.routes_for(job.model)
        if has_images and routes and routes[0].channel is None:
            # A local engine will need the pixels: decode them now, so that a corrupt file is a 400
            # before anything is reserved. A relayed edit sends the bytes and never decodes them.
            await anyio.to_thread.run_sync(_decode_inputs, job)

        def usage_at(quality: str) -> Usage:
            return job_usage(
                prompt=job.prompt, quality=quality, width=job.width, height=job.height, n=job.n,
                partial_images=job.partial_images, input_sizes=[img.size for img in job.images],
                high_fidelity=job.input_fidelity == "high",
            )

        auto_quality = job.passthrough.get("quality") in (None, "auto")
        usage = usage_at(job.quality)
        return Prepared(job, options, routes, usage, usage_at("high") if auto_quality else usage)

    def _check_model(self, key: ApiKey, model: str) -> None:
        if key.allowed_models is not None and model not in key.allowed_models:
            raise ModelNotFound(
                f"The model '{model}' does not exist or you do not have access to it.", param="model"
            )

    async def _admit(self, key: ApiKey, prepared: Prepared, ctx: RequestContext) -> Admission:
        job = prepared.job
        tier = rate_limit.tier_of(key, self.settings.tiers)
        decision = await rate_limit.admit(
            self.limiter, key, rate_limit.limits_for(key, self.settings.tiers), images=job.n,
            now=self.clock.now(), fail_open=self.settings.rate_limit_fail_open,
        )
        multiplier = key.multiplier_ppm if key.multiplier_ppm is not None else tier.multiplier_ppm
        try:
            reservation = await reserve_quota.reserve(
                self.stores.ledger, key.id, self._price(prepared, prepared.max_usage, job.n, multiplier),
                ctx.request_id, self.settings.reservation_timeout_s, self.db,
            )
        except BaseException:
            await self._release_lease(key, decision)
            raise
        return Admission(decision, reservation, multiplier)

    def _price(self, prepared: Prepared, usage: Usage, images: int, multiplier_ppm: int) -> int:
        price = price_for(self.settings.prices, prepared.job.model)
        return reserve_quota.quote(price, usage, prepared.job, images, multiplier_ppm)[1]

    async def _generate(
        self, prepared: Prepared, trace: Trace
    ) -> tuple[list[FinalImage | None], dict[str, Any]]:
        """Run the job to completion: its final images by index, and the values an upstream echoed."""
        job = prepared.job
        finals: list[FinalImage | None] = [None] * job.n
        echo: dict[str, Any] = {}
        async for event in self._engine_events(prepared, trace):
            if isinstance(event, FinalImage):
                if event.encoded is None and event.image is not None:
                    # Pixels (a local engine): encoded now, so that n pictures' pixels are not all held.
                    event = replace(event, image=None, encoded=await store_image.encode(event.image, job))
                finals[event.index] = event
                trace.add_image(event)
                echo.update(event.extra.get("echo") or {})
        return finals, echo

    async def _complete(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared,
        admission: Admission, trace: Trace, finals: list[FinalImage | None],
    ) -> settle.Kept:
        """Write the image files, then index them, settle and record the request: one worker-thread
        call, one transaction (they were three of each)."""
        job = prepared.job
        charge = self._charge(admission, prepared, trace)
        record = self._usage_record(key, ctx, request, prepared, trace, 200, None)
        kept, trace.cost = await self._end(
            admission, charge, record,
            write=lambda: [None if f is None else store_image.write(f, job, self.images) for f in finals],
        )
        return kept

    async def _end(
        self, admission: Admission, charge: int | None, record: UsageRecord,
        write: Callable[[], settle.Kept] | None = None,
    ) -> tuple[settle.Kept, int]:
        """settle.finish: the images' rows, the settlement (None: the refund), the usage record."""
        return await settle.finish(self.stores.ledger, self.stores.usage, self.images,
                                   reservation=admission.reservation, charge_micros=charge, record=record,
                                   write=write, db=self.db)

    def _response(
        self, prepared: Prepared, base_url: str, trace: Trace, finals: list[FinalImage | None],
        kept: settle.Kept, echo: dict[str, Any],
    ) -> tuple[dict[str, Any], list[str]]:
        """The ImagesResponse body and the stored blob names."""
        job, options = prepared.job, prepared.options
        items: list[dict[str, Any]] = [{} for _ in range(job.n)]
        names = ["" for _ in range(job.n)]
        for index, (final, item) in enumerate(zip(finals, kept, strict=True)):
            if final is not None and item is not None:
                data, stored = item
                names[index] = stored.name
                url = self.signer.url(base_url, stored.name)
                items[index] = respond.data_item(final.b64 or _b64(data), url, options)
        created = int(self.clock.now())
        usage = trace.usage if trace.reported else prepared.usage
        return respond.images_response(job, items, usage, created, options, echo), names

    async def _stream(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared,
        admission: Admission, trace: Trace,
    ) -> AsyncIterator[dict[str, Any]]:
        """SSE event bodies: partial images as they come, one completed event per image.

        A local engine's usage is split across the completed events (input tokens on the
        first image) so they add up to the request's usage; an upstream's own usage is relayed.
        Only delivered images are charged. A failure after the stream started becomes an
        `error` event, which the openai SDK raises as APIError.
        """
        job = prepared.job
        per_image_out = prepared.usage.image_out // job.n
        error: GatewayError | None = None
        sent = False
        try:
            async for event in self._engine_events(prepared, trace):
                now = int(self.clock.now())
                if isinstance(event, PartialImage):
                    data = event.encoded if event.encoded is not None else await store_image.encode(
                        event.image, job)  # type: ignore[arg-type]
                    sent = True
                    yield respond.partial_event(job, event.b64 or _b64(data), event.partial_index, now)
                    continue
                data, name = await self._keep(event, job)
                first = trace.images == 0
                usage = event.extra.get("usage") or Usage(
                    text_in=prepared.usage.text_in if first else 0,
                    image_in=prepared.usage.image_in if first else 0,
                    image_out=per_image_out,
                )
                url = self.signer.url(self._base(ctx), name) if prepared.options.include_url else None
                sent = True
                yield respond.completed_event(job, event.b64 or _b64(data), url, usage, now)
                trace.add_image(event, usage)
        except GatewayError as exc:
            error = exc
            if not sent:
                raise  # nothing sent yet: handle() answers with the error's status (settled below)
            yield {"type": "error", **exc.body()}
        except Exception:  # the 200 is already sent: end the stream with an error event
            log.exception("stream of request %s failed", ctx.request_id)
            error = GatewayError("The server had an error while processing your request.")
            yield {"type": "error", **error.body()}
        finally:
            self.db.active -= 1  # the stream's count (taken in _handle): it needs the loop no more
            with anyio.CancelScope(shield=True):
                # Settled for the delivered images, or refunded when none was, with the usage record.
                charge = self._charge(admission, prepared, trace) if trace.images else None
                complete = trace.images == job.n and error is None
                status = 200 if complete else (status_of(error) if error else 499)
                code = None if complete else (error.code if error else "client_disconnected")
                record = self._usage_record(key, ctx, request, prepared, trace, status, code)
                _, trace.cost = await self._end(admission, charge, record)
                await self._finish(key, admission)

    def _charge(self, admission: Admission, prepared: Prepared, trace: Trace) -> int:
        """What the delivered images cost the key: the engine's reported usage, else our own token
        math. Also notes what the operator pays the channel, when its prices are known."""
        if not trace.reported and not prepared.options.stream:
            trace.usage = prepared.usage  # a local engine: our own token math is the usage
        usage = trace.usage
        channel = trace.report.route.channel if trace.report.route else None
        if channel is not None and channel.prices is not None:
            trace.upstream_cost = reserve_quota.quote(channel.prices, usage, prepared.job, trace.images,
                                                      1_000_000)[0]
        return self._price(prepared, usage, trace.images, admission.multiplier_ppm)

    async def _engine_events(
        self, prepared: Prepared, trace: Trace
    ) -> AsyncIterator[PartialImage | FinalImage]:
        try:
            async for event in self.router.run(prepared.job, prepared.routes, trace.report):
                yield event
        except GatewayError:
            raise
        except Exception as exc:  # an engine bug must not leak a traceback to the client
            route = trace.report.route
            name = route.engine.name if route else "unknown"
            raise EngineFailed(f"The '{name}' engine failed while generating the image.") from exc

    async def _keep(self, final: FinalImage, job: ImageJob) -> tuple[bytes, str]:
        data, stored = await store_image.store(final, job, self.images)
        return data, stored.name

    def _base(self, ctx: RequestContext) -> str:
        return self.settings.public_base_url or ctx.base_url

    async def _fail(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared,
        admission: Admission, trace: Trace, exc: BaseException, claimed: bool,
    ) -> None:
        with anyio.CancelScope(shield=True):
            err = exc if isinstance(exc, GatewayError) else None
            trace.usage, trace.images = Usage(), 0
            record = self._usage_record(key, ctx, request, prepared, trace, status_of(err) if err else 500,
                                        err.code if err else "internal_error")
            # The refund and the usage record in one transaction.
            await self._end(admission, None, record)
            await self._finish(key, admission)
            if claimed:
                await self._abandon(key, ctx)

    async def _finish(self, key: ApiKey, admission: Admission) -> None:
        await self._release_lease(key, admission.decision)

    async def _release_lease(self, key: ApiKey, decision: Decision) -> None:
        if decision.lease is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await self.limiter.release(str(key.id), decision.lease)
                except Exception:  # noqa: S110 - the lease expires on its own (lease TTL)
                    pass

    async def _abandon(self, key: ApiKey, ctx: RequestContext) -> None:
        await self.db.run(self.stores.idempotency.abandon, key.id, ctx.idempotency_key)

    async def _record(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared | None,
        trace: Trace, status: int, error_code: str | None,
    ) -> None:
        """The usage record of a request that failed before its reservation."""
        rec = self._usage_record(key, ctx, request, prepared, trace, status, error_code)
        with anyio.CancelScope(shield=True):
            await self.db.run(self.stores.usage.record, rec)

    def _usage_record(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared | None,
        trace: Trace, status: int, error_code: str | None,
    ) -> UsageRecord:
        job = prepared.job if prepared else None
        route = trace.report.route
        return UsageRecord(
            request_id=ctx.request_id, key_id=key.id, created_at=self.clock.now(),
            endpoint="edits" if request.kind == "edit" else "generations", status=status,
            model=job.model if job else None, engine=route.engine.name if route else None,
            params=_params(job) if job else {}, images=trace.images, text_in=trace.usage.text_in,
            image_in=trace.usage.image_in, image_out=trace.usage.image_out, cost_micros=trace.cost,
            latency_ms=int((time.perf_counter() - trace.started) * 1000), error_code=error_code,
            channel=route.channel.name if route and route.channel else None,
            upstream_cost_micros=trace.upstream_cost, attempts=max(1, trace.report.attempts),
            maybe_billed=trace.report.maybe_billed,
        )

    async def reload_channels(self) -> None:
        """Rebuild the routes from the channels table (every replica, every few seconds)."""
        channels = await self.db.run_in_thread(self.stores.channels.list)
        self.registry = build_registry(self.settings, channels, self.upstream)

    async def disable_channel(self, channel: Channel, reason: str) -> None:
        await self.db.run_in_thread(Channels(self.stores.channels).disable, channel, reason)
        await self.reload_channels()

    async def probe_channels(self) -> dict[str, int]:
        revived = await self.prober.run()
        if revived:
            await self.reload_channels()
        return {"channels re-enabled": len(revived)}

    async def sweep(self) -> dict[str, int]:
        """Expired images, stale reservations (their process died) and old idempotency keys."""
        return {
            "images": await self.db.run_in_thread(self.images.sweep),
            "reservations": await self.db.run_in_thread(self.stores.ledger.sweep),
            "idempotency_keys": await self.db.run_in_thread(self.stores.idempotency.sweep),
        }


def _decode_inputs(job: ImageJob) -> None:
    for image in (*job.images, *([job.mask] if job.mask else [])):
        image.image  # noqa: B018 - decodes and keeps the pixels


def _params(job: ImageJob) -> dict[str, Any]:
    return {
        "kind": job.kind, "n": job.n, "size": job.size, "quality": job.quality,
        "background": job.background, "output_format": job.output_format,
        "output_compression": job.output_compression, "moderation": job.moderation,
        "seed": job.seed, "partial_images": job.partial_images, "stream": job.stream,
        "input_images": len(job.images), "mask": job.mask is not None, "user": job.user,
    }


async def _prepend(first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]
                   ) -> AsyncIterator[dict[str, Any]]:
    try:
        if first is not None:
            yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


def _b64(data: bytes) -> str:
    # pybase64 (SIMD): the same text as base64.b64encode, 0.03 ms instead of 0.7 ms for a 1024x1024 PNG.
    return pybase64.b64encode(data).decode("ascii")
