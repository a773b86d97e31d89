"""The request path, top to bottom.

    authenticate -> fetch_images -> validate -> moderate -> route -> engine
                 -> store_image -> respond

Rate limits, quota reservation, the result cache and settlement slot in between route and
respond as they land (see design.md). `ImageFlow` is built once in the composition root
(http/app.py) and shared by every request; it holds no per-request state.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx

from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.domain import FinalImage, ImageJob, PartialImage
from imagegate.engines.base import Engine
from imagegate.engines.registry import EngineRegistry
from imagegate.errors import EngineFailed, GatewayError
from imagegate.flow import authenticate as auth_stage
from imagegate.flow import fetch_images, moderate, respond, store_image, validate
from imagegate.flow.request import ImageRequest, ResponseOptions
from imagegate.images.tokens import Usage, job_usage
from imagegate.storage.blobs import ImageStore
from imagegate.storage.keys import ApiKey, KeyRepo
from imagegate.storage.signing import UrlSigner


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that passed every check and is ready for its engine."""

    job: ImageJob
    options: ResponseOptions
    engine: Engine
    usage: Usage


class ImageFlow:
    def __init__(
        self,
        settings: Settings,
        keys: KeyRepo,
        images: ImageStore,
        signer: UrlSigner,
        registry: EngineRegistry,
        http: httpx.AsyncClient,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.images = images
        self.signer = signer
        self.registry = registry
        self.http = http
        self.clock = clock
        self._seeds = random.SystemRandom()

    async def authenticate(self, authorization: str | None) -> ApiKey:
        return await auth_stage.authenticate(authorization, self.keys)

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

    async def generate(self, prepared: Prepared, base_url: str) -> dict[str, Any]:
        """Run the job to completion and return the ImagesResponse body."""
        job, options = prepared.job, prepared.options
        items: list[dict[str, Any]] = [{} for _ in range(job.n)]
        async for event in self._engine_events(prepared):
            if isinstance(event, FinalImage):
                data, url = await self._keep(event, job, base_url)
                items[event.index] = respond.data_item(_b64(data), url, options)
        created = int(self.clock.now())
        return respond.images_response(job, items, prepared.usage, created, options)

    async def stream(self, prepared: Prepared, base_url: str) -> AsyncIterator[dict[str, Any]]:
        """Yield SSE event bodies: partial images as they come, one completed per image.

        The request's usage is split across the completed events (input tokens on the
        first image), so their sum is the request's usage. A failure after the stream has
        started becomes an `error` event, which the openai SDK raises as APIError.
        """
        job = prepared.job
        per_image_out = prepared.usage.image_out // job.n
        try:
            async for event in self._engine_events(prepared):
                now = int(self.clock.now())
                if isinstance(event, PartialImage):
                    data = await store_image.encode(event.image, job)
                    yield respond.partial_event(job, _b64(data), event.partial_index, now)
                    continue
                data, url = await self._keep(event, job, base_url)
                first = event.index == 0
                usage = Usage(
                    text_in=prepared.usage.text_in if first else 0,
                    image_in=prepared.usage.image_in if first else 0,
                    image_out=per_image_out,
                )
                include_url = url if prepared.options.include_url else None
                yield respond.completed_event(job, _b64(data), include_url, usage, now)
        except GatewayError as exc:
            yield {"type": "error", **exc.body()}

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

    async def _keep(self, final: FinalImage, job: ImageJob, base_url: str) -> tuple[bytes, str]:
        data, stored = await store_image.store(final, job, self.images)
        base = self.settings.public_base_url or base_url
        return data, self.signer.url(base, stored.name)

    async def sweep(self) -> int:
        return await anyio.to_thread.run_sync(self.images.sweep)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
