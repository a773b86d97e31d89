"""Adapting an OpenAI request to what a provider's model renders, and saying what was done.

`refusal(job, caps)`: what the route cannot honour at all (a transparent background without
alpha, a mask without masks, reference images without edits): the router skips the route, and
when no route is left the client gets 400 `unsupported_value` naming the parameter. Nothing
that cannot be honoured is faked.

`plan(job, caps)`: how the rest is honoured. A size the model cannot render is asked at the
closest size it renders (the same aspect ratio as near as it has, large enough to cover the
asked size where it can), then centre-cropped and resized to the exact size (only when the
client asked for an exact size: `auto` is the provider's own); an output format it lacks is
asked as PNG and converted; `n` beyond its maximum is fanned out in parallel calls; a stream
from a model that cannot stream gets one `completed` event per image. Each change is a note,
`size=1536x1024->1200x630`, that the response names in `x-imagegate-adapted`.

`Adapted(engine, caps)` runs a plan around an engine. A request that needs no change goes to the
engine untouched (no copy, no decode).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import anyio.to_thread
from PIL import Image

from imagegate.domain import EngineEvent, ImageJob, PartialImage
from imagegate.engines.base import Capabilities, Engine, SizeRule
from imagegate.errors import InvalidValue
from imagegate.images import fit
from imagegate.images.encode import sniff_format

NOTES_HEADER = "x-imagegate-adapted"
UNSUPPORTED = "unsupported_value"
_ECHOED = ("size", "output_format")  # the provider's own values: the response says the client's


def refusal(job: ImageJob, caps: Capabilities) -> InvalidValue | None:
    """Why a route with these capabilities cannot serve `job` (None: it can, after adaptation)."""
    if job.background == "transparent" and not caps.alpha:
        return _unsupported(
            "A transparent background is not supported by this model's providers.", "background"
        )
    if job.images and not caps.edits:
        return _unsupported("Editing reference images is not supported by this model's providers.", "image")
    if len(job.images) > caps.max_images:
        return _unsupported(
            f"This model's providers take at most {caps.max_images} reference images; "
            f"{len(job.images)} were given.",
            "image",
        )
    if job.mask is not None and not caps.masks:
        return _unsupported("A mask is not supported by this model's providers.", "mask")
    return None


def _unsupported(message: str, param: str) -> InvalidValue:
    return InvalidValue(message, param=param, code=UNSUPPORTED)


def renderable(width: int, height: int, caps: Capabilities) -> bool:
    if caps.sizes is not None:
        return f"{width}x{height}" in caps.sizes
    if caps.size_rule is not None:
        return caps.size_rule.allows(width, height)
    return True


def closest(width: int, height: int, caps: Capabilities) -> tuple[int, int]:
    """The renderable size to ask for width x height: the nearest aspect ratio (log scale), then
    the smallest that covers the asked size after the crop, else the largest."""
    if renderable(width, height, caps):
        return width, height
    if caps.size_rule is not None:
        return _by_rule(width, height, caps.size_rule)
    assert caps.sizes is not None
    sizes = [_parse(s) for s in caps.sizes]
    target = math.log(width / height)

    def key(size: tuple[int, int]) -> tuple[float, int, int]:
        w, h = size
        covers = _covers(size, width, height)
        return (round(abs(math.log(w / h) - target), 3), 0 if covers else 1, w * h if covers else -w * h)

    return min(sizes, key=key)


def _covers(size: tuple[int, int], width: int, height: int) -> bool:
    """Whether a render of `size`, cropped to width:height, has at least width x height pixels."""
    w, h = size
    return min(w / width, h / height) >= 1.0


def _by_rule(width: int, height: int, rule: SizeRule) -> tuple[int, int]:
    m = rule.multiple
    candidates = [(math.ceil(width / m) * m, math.ceil(height / m) * m)]
    ratio = min(max(width / height, 1 / rule.max_ratio), rule.max_ratio)
    pixels = min(max(width * height, rule.min_pixels), rule.max_pixels)
    w, h = math.sqrt(pixels * ratio), math.sqrt(pixels / ratio)
    for w_edge in (math.floor(w / m) * m, math.ceil(w / m) * m):
        for h_edge in (math.floor(h / m) * m, math.ceil(h / m) * m):
            candidates.append((w_edge, h_edge))
    allowed = [c for c in candidates if c[0] > 0 and c[1] > 0 and rule.allows(*c)]
    if not allowed:
        return 1024, 1024
    target = math.log(width / height)

    # Within 3% of the aspect ratio, a size that covers the asked one wins (the crop only trims a
    # few pixels), then the fewest pixels.
    def key(c: tuple[int, int]) -> tuple[float, bool, int]:
        off = abs(math.log(c[0] / c[1]) - target)
        return (off if off > 0.03 else 0.0, not _covers(c, width, height), c[0] * c[1])

    return min(allowed, key=key)


def _parse(size: str) -> tuple[int, int]:
    w, h = size.lower().split("x")
    return int(w), int(h)


def explicit_size(job: ImageJob) -> bool:
    """The client asked for an exact size (not `auto`, not left out)."""
    size = job.passthrough.get("size")
    return size is not None and str(size).strip().lower() != "auto"


@dataclass(frozen=True, slots=True)
class Plan:
    job: ImageJob  # what the provider is asked for (n: per call)
    notes: tuple[str, ...] = ()
    fit_to: tuple[int, int] | None = None  # crop and resize each image to this
    convert: bool = False  # decode the provider's images, so the gateway encodes the asked format
    chunks: tuple[int, ...] = (1,)  # images per call


def plan(job: ImageJob, caps: Capabilities) -> Plan:
    notes: list[str] = []
    sent: dict[str, Any] = {}
    wire = dict(job.passthrough)
    fit_to = None
    if not renderable(job.width, job.height, caps):
        width, height = closest(job.width, job.height, caps)
        sent.update(width=width, height=height)
        if explicit_size(job):
            fit_to = (job.width, job.height)
            wire["size"] = f"{width}x{height}"
            notes.append(f"size={width}x{height}->{job.size}")
    convert = job.output_format not in caps.formats
    if convert:
        made = "png" if "png" in caps.formats else caps.formats[0]
        sent["output_format"] = made
        wire["output_format"] = made
        if made == "png":
            wire.pop("output_compression", None)
        notes.append(f"format={made}->{job.output_format}")
    if job.stream and not caps.streaming:
        sent.update(stream=False, partial_images=0)
        wire.pop("stream", None)
        wire.pop("partial_images", None)
        notes.append("stream=completed-only")
    per_call = max(1, caps.max_n)
    chunks = tuple(min(per_call, job.n - start) for start in range(0, job.n, per_call))
    if len(chunks) > 1:
        notes.append(
            f"n={job.n}->{len(chunks)}x{per_call}" if job.n % per_call == 0 else f"n={job.n}->{chunks}"
        )
    if "n" in wire or len(chunks) > 1:
        wire["n"] = chunks[0]
    sent.update(n=chunks[0], passthrough=MappingProxyType(wire))
    return Plan(replace(job, **sent), tuple(notes), fit_to, convert or fit_to is not None, chunks)


class Adapted:
    """An engine run through a plan for a route's capabilities (see the module docstring)."""

    def __init__(self, engine: Engine, capabilities: Capabilities) -> None:
        self.engine = engine
        self.capabilities = capabilities
        self.name = engine.name

    def describe(self) -> str:
        return self.engine.describe()

    async def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        the_plan = plan(job, self.capabilities)
        if not the_plan.notes and the_plan.job.size == job.size:
            async for event in self.engine.run(job):
                yield await self._finish(event, 0, the_plan, job)
            return
        calls, offsets = [], []
        for i, count in enumerate(the_plan.chunks):
            wire = dict(the_plan.job.passthrough)
            if "n" in wire:
                wire["n"] = count
            calls.append(self.engine.run(replace(the_plan.job, n=count, passthrough=MappingProxyType(wire))))
            offsets.append(sum(the_plan.chunks[:i]))
        async for call, event in _merge(calls):
            yield await self._finish(event, offsets[call], the_plan, job)

    async def _finish(self, event: EngineEvent, offset: int, the_plan: Plan, job: ImageJob) -> EngineEvent:
        """The event as the client asked for it: its index among all calls' images, its pixels
        fitted and left for the gateway to encode in the asked format when the plan says so, or
        when the provider answered in another format than asked (its capabilities were wrong)."""
        notes = the_plan.notes
        made = sniff_format(event.encoded[:16]) if event.encoded is not None else None
        convert = the_plan.convert or (made is not None and made != job.output_format)
        if not convert:
            return (
                event
                if offset == 0 and not notes
                else replace(event, index=offset + event.index, adapted=notes)
            )
        if not the_plan.convert:
            notes = (*notes, f"format={made}->{job.output_format}")
        pixels = await anyio.to_thread.run_sync(_pixels, event, the_plan.fit_to)
        index = offset + event.index
        if isinstance(event, PartialImage):
            return replace(event, index=index, image=pixels, encoded=None, b64=None, adapted=notes)
        echo = {k: v for k, v in event.echo.items() if k not in _ECHOED}
        return replace(
            event,
            index=index,
            image=pixels,
            encoded=None,
            b64=None,
            media_type=None,
            echo=MappingProxyType(echo),
            adapted=notes,
        )


def _pixels(event: EngineEvent, fit_to: tuple[int, int] | None) -> Image.Image:
    if event.image is not None:
        image = event.image
    elif event.encoded is not None:
        image = fit.decode(event.encoded)
    else:
        raise ValueError("an engine event without an image")
    return fit.fit(image, *fit_to) if fit_to is not None else image


async def _merge(calls: list[AsyncIterator[EngineEvent]]) -> AsyncIterator[tuple[int, EngineEvent]]:
    """The events of several calls as they come, each with its call's position. The first failure
    ends them all."""
    if len(calls) == 1:
        async for event in calls[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, EngineEvent | None, Exception | None]] = asyncio.Queue()

    async def pump(i: int, call: AsyncIterator[EngineEvent]) -> None:
        try:
            async for event in call:
                await queue.put((i, event, None))
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put((i, None, exc))
            return
        finally:
            await call.aclose()  # type: ignore[attr-defined]
        await queue.put((i, None, None))

    tasks = [asyncio.create_task(pump(i, call)) for i, call in enumerate(calls)]
    try:
        running = len(tasks)
        while running:
            i, got, exc = await queue.get()
            if exc is not None:
                raise exc
            if got is None:
                running -= 1
                continue
            yield i, got
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
