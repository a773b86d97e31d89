"""The offline engine: deterministic placeholder art, no upstream and no model weights."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial as bind

import anyio.to_thread

from imagegate.domain import EngineEvent, FinalImage, ImageJob, PartialImage
from imagegate.engines.base import Capabilities
from imagegate.engines.placeholder.compose import partial, render


class PlaceholderEngine:
    """Renders each image with `compose.render` in a worker thread.

    When `job.stream` is set, each image is preceded by `job.partial_images` previews that
    sharpen towards it. The same job always yields the same pixels.
    """

    name = "placeholder"
    capabilities = Capabilities()  # every size, format, alpha, edits, masks and streaming

    def describe(self) -> str:
        return "deterministic offline placeholder renderer (no upstream, no model weights)"

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        for index in range(job.n):
            final = await anyio.to_thread.run_sync(bind(render, job, index))
            if job.stream:
                for k in range(job.partial_images):
                    preview = await anyio.to_thread.run_sync(bind(partial, final, k, job.partial_images))
                    yield PartialImage(index=index, partial_index=k, image=preview)
            yield FinalImage(index=index, image=final)
