"""Per-image drawing context: the seeded RNG, the palette, the detail level and the layout.

Everything random in an image comes from `context_for(job, index).rng`, seeded with a
SHA-256 of the job, so the same job and index always give the same pixels.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from PIL import Image

from imagegate.domain import ImageJob
from imagegate.engines.placeholder.palette import INK_DARK, PAPER, RGB, mix, palette_for


@dataclass(slots=True)
class Context:
    """What every drawing step of one image shares; `rng` is its only source of randomness."""

    rng: random.Random
    palette: list[RGB]
    level: int  # detail level 0..6
    dark: bool = True
    bg: tuple[RGB, RGB, RGB] = ((0, 0, 0), (0, 0, 0), (0, 0, 0))
    layout: str = "orbits"

    def pick(self, start: int = 0) -> RGB:
        return self.palette[self.rng.randrange(start, len(self.palette))]

    def fork(self) -> random.Random:
        """A generator of its own for a detail whose size depends on the level: it takes one draw
        from `rng` whatever the level, so the composition after it is the same at every quality."""
        return random.Random(self.rng.getrandbits(64))


# The composition's own counts (rings, bands, tiles, ridges, waves) are those of this level at
# every quality; the detail level adds stars, lights, grain and resolution on top.
STRUCTURE = 3


_QUALITY_LEVEL = {"low": 0, "medium": 2, "high": 4}
_EFFORT_SHIFT = {"low": -1, "medium": 0, "high": 1}
LAYOUTS = ("orbits", "bands", "tiles", "horizon", "bokeh", "waves")


def detail_level(quality: str, effort: str | None) -> int:
    """0 (low quality, low effort) .. 6 (high quality, high effort); medium/None is 3."""
    return _QUALITY_LEVEL.get(quality, 2) + 1 + _EFFORT_SHIFT.get(effort or "medium", 0)


def _job_digest(job: ImageJob, index: int) -> bytes:
    h = hashlib.sha256()
    for part in (
        job.prompt,
        str(job.seed),
        str(index),
        job.size,
        # Not quality nor effort: they set the detail level, never the composition, so a preview at
        # low quality is the same picture as the final one at high (the guide's tip).
        job.background,
        job.kind,
    ):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    for image in job.images:
        h.update(image.source.sha256())
    if job.mask is not None:
        h.update(b"mask" + job.mask.source.sha256())
    return h.digest()


def reference_images(job: ImageJob) -> list[Image.Image]:
    images = job.images[1:] if job.kind == "edit" else job.images
    return [item.image for item in images]


def context_for(job: ImageJob, index: int) -> Context:
    rng = random.Random(int.from_bytes(_job_digest(job, index), "big"))
    palette = palette_for(job.prompt, reference_images(job))
    rng.shuffle(palette)
    ctx = Context(rng=rng, palette=palette, level=detail_level(job.quality, job.effort))
    ctx.layout = rng.choice(LAYOUTS)
    ctx.dark = ctx.layout in ("bokeh", "orbits") or rng.random() < 0.45
    ink = INK_DARK if ctx.dark else PAPER
    strength = (0.74, 0.62, 0.5) if ctx.dark else (0.8, 0.7, 0.35)
    ctx.bg = (
        mix(palette[0], ink, strength[0]),
        mix(palette[1], ink, strength[1]),
        mix(palette[2], ink if ctx.dark else (255, 255, 255), strength[2]),
    )
    return ctx
