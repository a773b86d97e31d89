"""The engine seam: the only thing the request path knows about how images are made.

An engine is a small object (httpx's transport seam is the model): a `name`, its `capabilities`
as data, `describe()` and `run(job)`. It knows nothing of keys, money or HTTP clients. Every
failure is `imagegate.errors.EngineFailed` (or its provider subclass `UpstreamError`), whose
`retryable` tells the router (flow/route.py) to try the next route, for any engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from imagegate.domain import EngineEvent, ImageJob

ALL_FORMATS = ("png", "jpeg", "webp")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can render, as data, so the gateway can adapt a request to it and say so.

    `sizes`: the exact sizes it makes, or None for any size within the gateway's size rules
    (images/sizes.py); `max_n`: images per call; `alpha`: transparent backgrounds; `edits` and
    `masks`: reference images and inpainting masks; `streaming`: partial images.
    """

    sizes: tuple[str, ...] | None = None
    formats: tuple[str, ...] = ALL_FORMATS
    alpha: bool = True
    max_n: int = 10
    edits: bool = True
    masks: bool = True
    streaming: bool = True


class Engine(Protocol):
    """Turns a validated ImageJob into images.

    It yields, for each of the job's `n` images, up to `job.partial_images` PartialImage events
    (only when `job.stream`) and then exactly one FinalImage (with the engine's own `usage` when
    it knows it). Failures raise `imagegate.errors.EngineFailed`.
    """

    name: str
    capabilities: Capabilities

    def describe(self) -> str:
        """One line for /v1/models and the start-up log, e.g. 'offline placeholder renderer'."""
        ...

    def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        """Produce the job's images (and partial images when streaming)."""
        ...
