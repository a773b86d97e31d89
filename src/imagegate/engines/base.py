"""The engine seam: the only thing the request path knows about how images are made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from imagegate.domain import EngineEvent, ImageJob


class Engine(Protocol):
    """Turns a validated ImageJob into images.

    An engine knows nothing of keys, money or HTTP. It yields, for each of the job's
    `n` images, up to `job.partial_images` PartialImage events (only when `job.stream`)
    and then exactly one FinalImage. Failures raise `imagegate.errors.EngineFailed`.
    """

    name: str

    def describe(self) -> str:
        """One line for /v1/models and the start-up log, e.g. 'offline placeholder renderer'."""
        ...

    def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        """Produce the job's images (and partial images when streaming)."""
        ...
