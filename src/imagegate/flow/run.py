"""The request path, top to bottom.

    authenticate -> fetch_images -> validate -> moderate -> route -> idempotency
      -> rate_limit -> reserve_quota -> engine -> store_image -> settle -> respond

`ImageFlow` is built once in the composition root (http/app.py) and shared by every
request; it holds no per-request state. Whatever fails after the reservation refunds it in
full, releases the concurrency slot and leaves a usage record with the error code.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import httpx

from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.domain import FinalImage, ImageJob, PartialImage
from imagegate.engines.base import Engine
from imagegate.engines.registry import EngineRegistry
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
from imagegate.flow.request import ImageRequest, ResponseOptions
from imagegate.images.tokens import Usage, job_usage
from imagegate.limits.base import Decision, RateLimiter
from imagegate.pricing import price_for
from imagegate.storage.blobs import ImageStore
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
    engine: Engine
    usage: Usage


@dataclass(frozen=True, slots=True)
class Admission:
    """What rate limiting and the reservation granted."""

    decision: Decision
    reservation: Reservation
    multiplier_ppm: int


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


class ImageFlow:
    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        signer: UrlSigner,
        registry: EngineRegistry,
        limiter: RateLimiter,
        http: httpx.AsyncClient,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.keys = stores.keys
        self.images = stores.images
        self.signer = signer
        self.registry = registry
        self.limiter = limiter
        self.http = http
        self.clock = clock
        self._seeds = random.SystemRandom()

    async def authenticate(self, authorization: str | None) -> ApiKey:
        return await auth_stage.authenticate(authorization, self.keys)

    async def handle(self, request: ImageRequest, key: ApiKey, ctx: RequestContext) -> Outcome:
        """Run one images request for `key`, from validation to the settled response."""
        started = time.perf_counter()
        prepared: Prepared | None = None
        claimed = False
        try:
            prepared = await self.prepare(request, ctx.request_id)
            self._check_model(key, prepared.job.model)
            if ctx.idempotency_key and not prepared.options.stream:
                stored = await idempotency.claim(
                    self.stores.idempotency, key.id, ctx.idempotency_key, idempotency.body_hash(request)
                )
                if stored is not None:
                    body = await idempotency.replay(stored, self.images, self.signer, self._base(ctx))
                    return Outcome(body=body, headers={"idempotent-replayed": "true"})
                claimed = True
            admission = await self._admit(key, prepared, ctx)
        except GatewayError as exc:
            if claimed:
                await self._abandon(key, ctx)
            await self._record(key, ctx, request, prepared, started, status_of(exc), exc.code)
            raise
        headers = rate_limit.headers(admission.decision)
        if prepared.options.stream:
            return Outcome(events=self._stream(key, ctx, request, prepared, admission, started),
                           headers=headers)
        try:
            body, names = await self._generate(prepared, self._base(ctx))
        except BaseException as exc:
            await self._fail(key, ctx, request, prepared, admission, started, exc, claimed)
            raise
        charged = await settle.settle(self.stores.ledger, admission.reservation, self._price(
            prepared, prepared.usage, prepared.job.n, admission.multiplier_ppm))
        await self._finish(key, admission)
        await self._record(key, ctx, request, prepared, started, 200, None, prepared.usage, charged,
                           prepared.job.n)
        if claimed:
            await anyio.to_thread.run_sync(self.stores.idempotency.complete, key.id,
                                           ctx.idempotency_key, idempotency.stored_form(body, names))
        return Outcome(body=body, headers=headers)

    async def prepare(self, request: ImageRequest, request_id: str) -> Prepared:
        raw_images, raw_mask = await fetch_images.collect(request, self.http, self.settings)
        job, options = await anyio.to_thread.run_sync(
            lambda: validate.validate(
                request,
                raw_images,
                raw_mask,
                models=self.registry.models(),
                default_model=self.settings.default_model,
                new_seed=lambda: self._seeds.randrange(2**32),
                max_input_pixels=self.settings.max_input_pixels,
            )
        )
        moderate.check(job.prompt, job.moderation, self.settings.moderation_rules, request_id)
        engine = self.registry.engine_for(job.model)
        usage = job_usage(
            prompt=job.prompt,
            quality=job.quality,
            width=job.width,
            height=job.height,
            n=job.n,
            partial_images=job.partial_images,
            input_sizes=[img.size for img in job.images],
            high_fidelity=job.input_fidelity == "high",
        )
        return Prepared(job, options, engine, usage)

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
                self.stores.ledger, key.id, self._price(prepared, prepared.usage, job.n, multiplier),
                ctx.request_id, self.settings.reservation_timeout_s,
            )
        except BaseException:
            await self._release_lease(key, decision)
            raise
        return Admission(decision, reservation, multiplier)

    def _price(self, prepared: Prepared, usage: Usage, images: int, multiplier_ppm: int) -> int:
        price = price_for(self.settings.prices, prepared.job.model)
        return reserve_quota.quote(price, usage, prepared.job, images, multiplier_ppm)[1]

    async def _generate(self, prepared: Prepared, base_url: str) -> tuple[dict[str, Any], list[str]]:
        """Run the job to completion: the ImagesResponse body and the stored blob names."""
        job, options = prepared.job, prepared.options
        items: list[dict[str, Any]] = [{} for _ in range(job.n)]
        names = ["" for _ in range(job.n)]
        async for event in self._engine_events(prepared):
            if isinstance(event, FinalImage):
                data, names[event.index] = await self._keep(event, job)
                url = self.signer.url(base_url, names[event.index])
                items[event.index] = respond.data_item(_b64(data), url, options)
        created = int(self.clock.now())
        return respond.images_response(job, items, prepared.usage, created, options), names

    async def _stream(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared,
        admission: Admission, started: float,
    ) -> AsyncIterator[dict[str, Any]]:
        """SSE event bodies: partial images as they come, one completed event per image.

        The request's usage is split across the completed events (input tokens on the
        first image), so their sum is the request's usage, and only delivered images are
        charged. A failure after the stream started becomes an `error` event, which the
        openai SDK raises as APIError.
        """
        job = prepared.job
        per_image_out = prepared.usage.image_out // job.n
        delivered = Usage()
        done = 0
        error: GatewayError | None = None
        try:
            async for event in self._engine_events(prepared):
                now = int(self.clock.now())
                if isinstance(event, PartialImage):
                    data = await store_image.encode(event.image, job)
                    yield respond.partial_event(job, _b64(data), event.partial_index, now)
                    continue
                data, name = await self._keep(event, job)
                first = done == 0
                usage = Usage(
                    text_in=prepared.usage.text_in if first else 0,
                    image_in=prepared.usage.image_in if first else 0,
                    image_out=per_image_out,
                )
                url = self.signer.url(self._base(ctx), name) if prepared.options.include_url else None
                yield respond.completed_event(job, _b64(data), url, usage, now)
                delivered, done = delivered + usage, done + 1
        except GatewayError as exc:
            error = exc
            yield {"type": "error", **exc.body()}
        except Exception:  # the 200 is already sent: end the stream with an error event
            log.exception("stream of request %s failed", ctx.request_id)
            error = GatewayError("The server had an error while processing your request.")
            yield {"type": "error", **error.body()}
        finally:
            with anyio.CancelScope(shield=True):
                charged = 0
                if done:
                    charged = await settle.settle(self.stores.ledger, admission.reservation, self._price(
                        prepared, delivered, done, admission.multiplier_ppm))
                else:
                    await settle.refund(self.stores.ledger, admission.reservation)
                await self._finish(key, admission)
                complete = done == job.n and error is None
                await self._record(key, ctx, request, prepared, started,
                                   200 if complete else (status_of(error) if error else 499),
                                   None if complete else (error.code if error else "client_disconnected"),
                                   delivered, charged, done)

    async def _engine_events(self, prepared: Prepared) -> AsyncIterator[PartialImage | FinalImage]:
        try:
            async for event in prepared.engine.run(prepared.job):
                yield event
        except GatewayError:
            raise
        except Exception as exc:  # an engine bug must not leak a traceback to the client
            raise EngineFailed(
                f"The '{prepared.engine.name}' engine failed while generating the image."
            ) from exc

    async def _keep(self, final: FinalImage, job: ImageJob) -> tuple[bytes, str]:
        data, stored = await store_image.store(final, job, self.images)
        return data, stored.name

    def _base(self, ctx: RequestContext) -> str:
        return self.settings.public_base_url or ctx.base_url

    async def _fail(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared,
        admission: Admission, started: float, exc: BaseException, claimed: bool,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await settle.refund(self.stores.ledger, admission.reservation)
            await self._finish(key, admission)
            if claimed:
                await self._abandon(key, ctx)
            err = exc if isinstance(exc, GatewayError) else None
            await self._record(key, ctx, request, prepared, started, status_of(err) if err else 500,
                               err.code if err else "internal_error")

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
        await anyio.to_thread.run_sync(self.stores.idempotency.abandon, key.id, ctx.idempotency_key)

    async def _record(
        self, key: ApiKey, ctx: RequestContext, request: ImageRequest, prepared: Prepared | None,
        started: float, status: int, error_code: str | None, usage: Usage | None = None,
        cost: int = 0, images: int = 0,
    ) -> None:
        job = prepared.job if prepared else None
        usage = usage or Usage()
        rec = UsageRecord(
            request_id=ctx.request_id, key_id=key.id, created_at=self.clock.now(),
            endpoint="edits" if request.kind == "edit" else "generations", status=status,
            model=job.model if job else None, engine=prepared.engine.name if prepared else None,
            params=_params(job) if job else {}, images=images, text_in=usage.text_in,
            image_in=usage.image_in, image_out=usage.image_out, cost_micros=cost,
            latency_ms=int((time.perf_counter() - started) * 1000), error_code=error_code,
        )
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stores.usage.record, rec)

    async def sweep(self) -> dict[str, int]:
        """Expired images, stale reservations (their process died) and old idempotency keys."""
        return {
            "images": await anyio.to_thread.run_sync(self.images.sweep),
            "reservations": await anyio.to_thread.run_sync(self.stores.ledger.sweep),
            "idempotency_keys": await anyio.to_thread.run_sync(self.stores.idempotency.sweep),
        }


def _params(job: ImageJob) -> dict[str, Any]:
    return {
        "kind": job.kind, "n": job.n, "size": job.size, "quality": job.quality,
        "background": job.background, "output_format": job.output_format,
        "output_compression": job.output_compression, "moderation": job.moderation,
        "seed": job.seed, "partial_images": job.partial_images, "stream": job.stream,
        "input_images": len(job.images), "mask": job.mask is not None, "user": job.user,
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
