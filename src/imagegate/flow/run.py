"""The request path, top to bottom.

    authenticate -> prepare (fetch_images -> validate -> moderate -> routes) -> idempotency
      -> rate_limit -> reserve_quota -> route (failover) -> engine -> store_image -> respond
    and, whatever happens after authentication: settlement (settle or refund, usage record,
    claim, lease)

`ImageFlow` is built once in the composition root (http/app.py) and shared by every request;
each request's state lives in one `RequestState`, handed to every stage and to its `Settlement`,
the only code that ends a request. Channel reloads, probes and sweeps are flow/maintenance.py's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.domain import FinalImage, PartialImage
from imagegate.engines.registry import EngineRegistry
from imagegate.errors import GatewayError, ModelNotFound
from imagegate.flow import authenticate, idempotency, rate_limit, reserve_quota, respond, store_image
from imagegate.flow.ports import RequestObserver, RequestStores
from imagegate.flow.prepare import Preparer
from imagegate.flow.request import ImageRequest
from imagegate.flow.route import Router
from imagegate.flow.settlement import Settlement
from imagegate.flow.state import Outcome, RequestContext, RequestState
from imagegate.limits.base import RateLimiter
from imagegate.provenance.sign import Origin, Sealer
from imagegate.storage.keys import ApiKey
from imagegate.storage.signing import UrlSigner

log = logging.getLogger("imagegate.flow")

__all__ = ["ImageFlow", "Outcome", "RequestContext"]


@dataclass
class ImageFlow:
    settings: Settings
    stores: RequestStores
    signer: UrlSigner
    registry: EngineRegistry  # replaced as channels change (flow/maintenance.py)
    limiter: RateLimiter
    router: Router
    prepare: Preparer
    clock: Clock
    sealer: Sealer | None = None  # C2PA manifests on every stored image (provenance/); None: off
    observer: RequestObserver | None = None  # metrics and access logs (http/observe.py)

    async def authenticate(self, authorization: str | None) -> ApiKey:
        return await authenticate.authenticate(authorization, self.stores.keys)

    async def handle(self, request: ImageRequest, key: ApiKey, ctx: RequestContext) -> Outcome:
        """Run one images request for `key`, from validation to the settled response."""
        state = RequestState(key=key, ctx=ctx, request=request)
        async with AsyncExitStack() as exits:
            settlement = await exits.enter_async_context(
                Settlement(
                    state,
                    self.stores,
                    self.limiter,
                    self.clock,
                    self.settings.reservation_timeout_s,
                    self.settings.history_prompts,
                    self.observer,
                )
            )
            await self._admit(state, settlement)
            if state.replayed is not None:
                return Outcome(body=state.replayed, headers={"idempotent-replayed": "true"})
            headers = rate_limit.headers(state.decision) if state.decision else {}
            if not state.job.stream:
                body = await self._generate(state, settlement)
                return Outcome(body=body, headers=headers | state.adaptation_headers())
            events = self._stream(state, exits.pop_all())  # the stream ends the settlement
        # A failure before the first event (every route down, an upstream 4xx) is still an HTTP error.
        first = await anext(events, None)
        return Outcome(events=respond.prepend(first, events), headers=headers | state.adaptation_headers())

    async def _admit(
        self,
        state: RequestState,
        settlement: Settlement,
        *,
        concurrency: bool = True,
        reservation_timeout_s: float | None = None,
    ) -> None:
        """prepare -> model access -> idempotency -> rate limits -> reservation. A job's submission
        (flow/jobs.py) takes no concurrency slot (its run does) and holds its reservation longer."""
        key, ctx, settings = state.key, state.ctx, self.settings
        prepared = state.prepared = await self.prepare(state.request, self.registry, ctx.request_id)
        job = prepared.job
        if key.allowed_models is not None and job.model not in key.allowed_models:
            raise ModelNotFound(
                f"The model '{job.model}' does not exist or you do not have access to it.", param="model"
            )
        if ctx.idempotency_key and not job.stream:
            stored = await idempotency.claim_for(
                state.request, self.stores.claims, key.id, ctx.idempotency_key, settings.reservation_timeout_s
            )
            if stored is not None:
                state.replayed = await idempotency.replay(
                    stored, self.stores.blobs, self.signer, self._base(ctx)
                )
                return
            state.claimed = True
        limits = rate_limit.limits_for(key, settings.tiers)
        state.decision = await rate_limit.admit(
            self.limiter,
            key,
            limits if concurrency else replace(limits, concurrency=None),
            images=job.n,
            now=self.clock.now(),
            fail_open=settings.rate_limit_fail_open,
        )
        tier = rate_limit.tier_of(key, settings.tiers)
        state.multiplier_ppm = key.multiplier_ppm if key.multiplier_ppm is not None else tier.multiplier_ppm
        most = reserve_quota.quote(prepared.price, prepared.max_usage, job, job.n, state.multiplier_ppm)[1]
        state.reservation = await reserve_quota.reserve(
            self.stores.credits,
            key.id,
            most,
            ctx.request_id,
            reservation_timeout_s or settings.reservation_timeout_s,
        )
        settlement.admitted()

    async def _generate(self, state: RequestState, settlement: Settlement) -> dict[str, Any]:
        """Run the job to completion, keep its images, settle, and build the ImagesResponse."""
        prepared = state.prepared
        assert prepared is not None
        job, options = prepared.job, prepared.options
        finals: list[FinalImage | None] = [None] * job.n
        echo: dict[str, Any] = {}
        async for event in self._engine(state):
            state.note(event)
            if isinstance(event, FinalImage):
                finals[event.index] = event
                state.deliver(event)
                echo.update(event.echo)
                if state.on_image is not None:
                    await state.on_image(state.images)
        state.engine_done = True
        seal, blobs = self._seal(state), self.stores.blobs
        if seal is not None:  # the response carries the sealed bytes' base64, not the engine's
            finals = [None if f is None else replace(f, b64=None) for f in finals]
        kept = await settlement.finish(
            lambda: store_image.write_all(finals, job, blobs, seal),
            store_image.sealing_bytes(finals, job, seal),
        )
        base = self._base(state.ctx)
        items, names = respond.data_items(finals, kept, lambda name: self.signer.url(base, name), options)
        usage = state.usage if state.reported else prepared.usage
        body = respond.images_response(job, items, usage, int(self.clock.now()), options, echo)
        if state.claimed:
            state.stored_response = idempotency.stored_form(body, names)
        return body

    async def _stream(self, state: RequestState, exits: AsyncExitStack) -> AsyncIterator[dict[str, Any]]:
        """SSE event bodies: partial images as they come, one completed event per image.

        A local engine's usage is split across the completed events (input tokens on the first
        image) so they add up to the request's usage; an upstream's own usage is relayed. The
        settlement charges what was delivered. A failure after the stream started becomes an
        `error` event, which the openai SDK raises as APIError.
        """
        async with exits:
            job, prepared = state.job, state.prepared
            assert prepared is not None
            try:
                async for event in self._engine(state):
                    now = int(self.clock.now())
                    state.sent = True
                    state.note(event)
                    if isinstance(event, PartialImage):
                        b64 = event.b64 or respond.b64(await store_image.partial_bytes(event, job))
                        yield respond.partial_event(job, b64, event.partial_index, now)
                        state.open_partials += 1
                        continue
                    event, sha256 = await store_image.sealed_one(event, job, self._seal(state))
                    data, stored = await store_image.store(event, job, self.stores.blobs, sha256)
                    state.outputs.append({"sha256": stored.sha256, "ext": stored.ext})
                    usage = event.usage or state.share_of_usage()
                    url = (
                        self.signer.url(self._base(state.ctx), stored.name)
                        if prepared.options.include_url
                        else None
                    )
                    yield respond.completed_event(job, event.b64 or respond.b64(data), url, usage, now)
                    state.deliver(event, usage)
                state.engine_done = True
            except GatewayError as exc:
                state.error = exc
                if not state.sent:
                    raise  # nothing sent yet: handle() answers with the error's status
                yield {"type": "error", **exc.body()}
            except Exception:  # the 200 is already sent: end the stream with an error event
                log.exception("stream of request %s failed", state.ctx.request_id)
                state.error = GatewayError(
                    "The server had an error while processing your request.", code="internal_error"
                )
                yield {"type": "error", **state.error.body()}

    def _engine(self, state: RequestState) -> AsyncIterator[PartialImage | FinalImage]:
        assert state.prepared is not None
        return store_image.engine_events(
            self.router.run(state.job, state.prepared.routes, state.report), state.job, state.report
        )

    def _seal(self, state: RequestState) -> store_image.Seal | None:
        """How this request's images get their manifests: the model, the engine that made them
        and, for an edit, its input images (then the mask)."""
        if self.sealer is None:
            return None
        job, route = state.job, state.report.route
        inputs = [(i.media_type, i.source.open) for i in job.inputs]
        relayed = route is None or route.channel is not None  # a local engine's images have no manifest
        origin = Origin(job.model, route.engine.name if route else "unknown", job.kind, inputs, relayed)
        sealer = self.sealer
        return lambda data, fmt: sealer.seal_hashed(data, fmt, origin)

    def _base(self, ctx: RequestContext) -> str:
        return self.settings.public_base_url or ctx.base_url
