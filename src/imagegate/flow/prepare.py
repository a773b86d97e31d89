"""Stage: a raw request -> a `Prepared` job (fetch_images -> validate -> moderate -> routes -> usage).

Contract: `prepare(request, ...)` returns the validated job, its response options, the routes of
its model, the key's list price for it and its usage by our token tables; or raises the 4xx
GatewayError a client's mistake deserves (nothing is reserved yet).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import anyio.to_thread

from imagegate.config import Settings
from imagegate.domain import ImageJob
from imagegate.engines import adapt
from imagegate.engines.fetch import Fetcher
from imagegate.engines.registry import EngineRegistry, Route
from imagegate.flow import fetch_images, moderate, validate
from imagegate.flow.request import ImageRequest, ResponseOptions
from imagegate.flow.state import Prepared
from imagegate.images.tokens import Usage, job_usage
from imagegate.pricing import ModelPrice, price_for

_seeds = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Preparer:
    settings: Settings
    fetcher: Fetcher  # reference images given as URLs

    async def __call__(self, request: ImageRequest, registry: EngineRegistry, request_id: str) -> Prepared:
        settings = self.settings
        raw_images, raw_mask = await fetch_images.collect(request, self.fetcher)

        def check() -> tuple[ImageJob, ResponseOptions]:
            return validate.validate(
                request,
                raw_images,
                raw_mask,
                models=registry.models(),
                default_model=settings.default_model,
                new_seed=lambda: _seeds.randrange(2**32),
                max_input_pixels=settings.max_input_pixels,
                max_request_pixels=settings.max_request_pixels,
            )

        # Reading input images' headers is worth a worker thread; checking a plain generation's
        # fields (about 30 us) is not worth the hop (about 60 us).
        has_images = bool(raw_images) or raw_mask is not None
        job, options = await anyio.to_thread.run_sync(check) if has_images else check()
        moderate.check(job.prompt, job.moderation, settings.moderation_rules, request_id)
        if job.moderation == "auto" and settings.moderation_channel:
            await moderate.check_remote(registry.moderator, job.prompt, request_id)
        routes = _capable(job, registry.routes_for(job.model))
        if has_images and routes and routes[0].channel is None:
            # A local engine will need the pixels: decode them now, so that a corrupt file is a 400
            # before anything is reserved. A relayed edit sends the bytes and never decodes them.
            await anyio.to_thread.run_sync(_decode_inputs, job)
        auto_quality = job.passthrough.get("quality") in (None, "auto")
        usage = _usage(job, job.quality)
        return Prepared(
            job,
            options,
            routes,
            key_price(settings, job.model, routes),
            usage,
            _usage(job, "high") if auto_quality else usage,
        )


def key_price(settings: Settings, model: str, routes: list[Route]) -> ModelPrice:
    """The list price a key pays: the price table's, or the placeholder's own (free by default)
    when nothing but the offline placeholder serves the model."""
    if routes and all(r.channel is None and r.engine.name == "placeholder" for r in routes):
        return settings.placeholder_price
    return price_for(settings.prices, model)


def _capable(job: ImageJob, routes: list[Route]) -> list[Route]:
    """The routes that can serve the job after adaptation (engines/adapt.py); when none can, the
    400 that names what none of them honours (a transparent background, a mask...)."""
    capable = [r for r in routes if adapt.refusal(job, r.capabilities) is None]
    if routes and not capable:
        refusal = adapt.refusal(job, routes[0].capabilities)
        assert refusal is not None
        raise refusal
    return capable


def _usage(job: ImageJob, quality: str) -> Usage:
    return job_usage(
        prompt=job.prompt,
        quality=quality,
        width=job.width,
        height=job.height,
        n=job.n,
        partial_images=job.partial_images,
        input_sizes=[img.size for img in job.images],
        high_fidelity=job.input_fidelity == "high",
    )


def _decode_inputs(job: ImageJob) -> None:
    for image in job.inputs:
        image.image  # noqa: B018 - decodes and keeps the pixels
