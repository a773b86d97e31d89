"""Drawing primitives: shapes, soft masks and shadows, glows, stars, rounded masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter
from PIL.Image import Resampling

from imagegate.engines.placeholder.context import Context
from imagegate.engines.placeholder.palette import RGB, RGBA, mix, with_alpha

# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str  # ellipse, polygon, rrect, pie, line
    xy: tuple[float, ...]
    fill: RGBA | None = None
    outline: RGBA | None = None
    width: float = 0
    radius: float = 0
    angles: tuple[float, float] = (0, 360)


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: Shape,
    scale: float = 1.0,
    offset: tuple[float, float] = (0, 0),
    mask: bool = False,
) -> None:
    xy = [(v + offset[i % 2]) * scale for i, v in enumerate(shape.xy)]
    fill: RGBA | int | None = 255 if mask and shape.fill else shape.fill
    outline: RGBA | int | None = 255 if mask and shape.outline else shape.outline
    width = max(1, round(shape.width * scale)) if shape.width else 0
    if shape.kind == "ellipse":
        draw.ellipse(xy, fill=fill, outline=outline, width=width)
    elif shape.kind == "polygon":
        draw.polygon(xy, fill=fill, outline=outline)
    elif shape.kind == "rrect":
        draw.rounded_rectangle(xy, radius=shape.radius * scale, fill=fill, outline=outline, width=width)
    elif shape.kind == "pie":
        draw.pieslice(xy, shape.angles[0], shape.angles[1], fill=fill)
    elif shape.kind == "line":
        draw.line(xy, fill=outline, width=width, joint="curve")


def circle(
    x: float,
    y: float,
    r: float,
    fill: RGBA | None = None,
    outline: RGBA | None = None,
    width: float = 0,
) -> Shape:
    return Shape("ellipse", (x - r, y - r, x + r, y + r), fill, outline, width)


def soft_mask(
    size: tuple[int, int],
    shapes: Sequence[Shape],
    blur: float,
    offset: tuple[float, float] = (0, 0),
    scale: float = 0.25,
) -> Image.Image:
    """An "L" mask of `shapes`, drawn small, blurred and scaled back up (cheap softness)."""
    small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    mask = Image.new("L", small, 0)
    draw = ImageDraw.Draw(mask)
    for shape in shapes:
        draw_shape(draw, shape, scale, offset, mask=True)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur * scale))
    return mask.resize(size, Resampling.BILINEAR)


def fade(mask: Image.Image, opacity: float) -> Image.Image:
    return mask.point([round(v * opacity) for v in range(256)])


def paint(
    scene: Image.Image,
    ctx: Context,
    shapes: Sequence[Shape],
    shadow: float = 1.0,
    direction: tuple[float, float] = (0.35, 1.0),
) -> None:
    """Draw `shapes` on the RGB `scene`, after a soft drop shadow when the level allows."""
    if shadow > 0 and ctx.level > 0 and shapes:
        u = min(scene.size)
        distance = u * 0.018 * shadow
        offset = (direction[0] * distance, direction[1] * distance)
        mask = soft_mask(scene.size, shapes, blur=u * 0.025 * shadow, offset=offset)
        tone = mix(ctx.bg[0], (0, 0, 0), 0.75)
        scene.paste(tone, (0, 0), fade(mask, 0.45 if ctx.dark else 0.28))
    draw = ImageDraw.Draw(scene, "RGBA")
    for shape in shapes:
        draw_shape(draw, shape)


def glow(scene: Image.Image, x: float, y: float, r: float, colour: RGB, opacity: float) -> None:
    mask = soft_mask(scene.size, [circle(x, y, r, fill=(255, 255, 255, 255))], blur=r * 0.6, scale=0.125)
    scene.paste(colour, (0, 0), fade(mask, opacity))


def stars(scene: Image.Image, ctx: Context, count: int, top: float = 1.0) -> None:
    draw = ImageDraw.Draw(scene, "RGBA")
    w, h = scene.size
    rng = ctx.fork()  # as many stars as the detail level asks, the composition unmoved
    for _ in range(count):
        x, y = rng.uniform(0, w), rng.uniform(0, h * top)
        r = rng.choice((0.6, 0.8, 1.0, 1.4)) * max(1.0, min(w, h) / 600)
        a = rng.randint(90, 230)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 250, a))


# --------------------------------------------------------------------------- masks and layers


def rounded_mask(size: tuple[int, int], radius: float, ss: int = 3) -> Image.Image:
    big = Image.new("L", (size[0] * ss, size[1] * ss), 0)
    ImageDraw.Draw(big).rounded_rectangle(
        (0, 0, size[0] * ss - 1, size[1] * ss - 1), radius=radius * ss, fill=255
    )
    return big.reduce(ss)


def masked_colour(size: tuple[int, int], colour: RGB, alpha: Image.Image) -> Image.Image:
    layer = Image.new("RGBA", size, with_alpha(colour, 0))
    layer.putalpha(alpha)
    return layer
