"""The composition without text: gradient background, layout, softening, film grain."""

from __future__ import annotations

import math

from PIL import Image, ImageChops, ImageFilter, ImageOps
from PIL.Image import Resampling

from imagegate.engines.placeholder.context import Context
from imagegate.engines.placeholder.drawing import fade
from imagegate.engines.placeholder.layouts import LAYOUT_FUNCTIONS

# --------------------------------------------------------------------------- background


def _background(size: tuple[int, int], ctx: Context) -> Image.Image:
    """A diagonal two-colour gradient with an off-centre glow, smooth from a small master."""
    rng = ctx.rng
    small = (
        (64, max(8, round(64 * size[1] / size[0])))
        if size[0] >= size[1]
        else (max(8, round(64 * size[0] / size[1])), 64)
    )
    vertical = Image.linear_gradient("L").resize(small, Resampling.BILINEAR)
    horizontal = Image.linear_gradient("L").rotate(90).resize(small, Resampling.BILINEAR)
    if rng.random() < 0.5:
        horizontal = ImageOps.mirror(horizontal)
    mask = Image.blend(vertical, horizontal, rng.uniform(0.2, 0.8))
    base = Image.composite(Image.new("RGB", small, ctx.bg[1]), Image.new("RGB", small, ctx.bg[0]), mask)
    glow = Image.radial_gradient("L").resize((small[0] * 2, small[1] * 2), Resampling.BILINEAR)
    canvas = Image.new("L", small, 255)
    gx, gy = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.6)
    canvas.paste(glow, (round(small[0] * (gx - 1)), round(small[1] * (gy - 1))))
    glow_mask = fade(ImageOps.invert(canvas), 0.8)
    base.paste(ctx.bg[2], (0, 0), glow_mask)
    return base.resize(size, Resampling.BICUBIC)


# --------------------------------------------------------------------------- scene


def _working_size(size: tuple[int, int], level: int) -> tuple[int, int]:
    """Where the scene is drawn: smaller than `size` for big images (then softened and
    scaled up), twice as large for small ones (then box-filtered down: anti-aliasing)."""
    budget = 200_000 + 50_000 * level
    pixels = max(1, size[0] * size[1])
    if pixels * 4 <= budget:
        return size[0] * 2, size[1] * 2
    scale = min(1.0, math.sqrt(budget / pixels))
    return max(8, round(size[0] * scale)), max(8, round(size[1] * scale))


_SOFTEN = ImageFilter.Kernel((3, 3), (1, 2, 1, 2, 4, 2, 1, 2, 1), 16)


def _grain(image: Image.Image, ctx: Context) -> Image.Image:
    """Film grain (RGB in, RGB out), from a seeded noise tile; none at low levels."""
    rng = ctx.fork()  # taken at every level, so what is drawn after grain is the same at all of them
    amplitude = max(0, ctx.level - 1)
    if amplitude == 0:
        return image
    tile_size = 128
    noise = Image.frombytes("L", (tile_size, tile_size), rng.randbytes(tile_size**2))
    noise = noise.point([v * 2 * amplitude // 255 for v in range(256)])
    field_l = Image.new("L", image.size)
    for y in range(0, image.size[1], tile_size):
        for x in range(0, image.size[0], tile_size):
            field_l.paste(noise, (x, y))
    grain = Image.merge("RGB", (field_l, field_l, field_l))
    return ImageChops.add(image, grain, 1.0, -amplitude)


def render_scene(size: tuple[int, int], ctx: Context) -> Image.Image:
    """The composition without text: an RGB image of `size`."""
    work = _working_size(size, ctx.level)
    scene = _background(work, ctx)
    LAYOUT_FUNCTIONS[ctx.layout](scene, ctx)
    if work[0] > size[0]:
        scene = scene.resize(size, Resampling.BOX)
    elif work != size:
        scene = scene.filter(_SOFTEN).resize(size, Resampling.BICUBIC)
    else:
        scene = scene.filter(_SOFTEN)
    return _grain(scene, ctx)
