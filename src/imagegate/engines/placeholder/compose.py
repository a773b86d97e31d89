"""Entry points: `render` (generations, transparent emblems, edits with and without a
mask) and `partial` (progressively sharper previews)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps
from PIL.Image import Resampling

from imagegate.domain import ImageJob
from imagegate.engines.placeholder.context import Context, context_for, reference_images
from imagegate.engines.placeholder.drawing import Shape, circle, draw_shape, fade, masked_colour, soft_mask
from imagegate.engines.placeholder.palette import INK_DARK, PAPER, mix
from imagegate.engines.placeholder.scene import render_scene
from imagegate.engines.placeholder.text import caption, card

# --------------------------------------------------------------------------- transparent emblem


def _emblem_outline(kind: str, d: float, inset: float) -> Shape:
    a, b = inset, d - inset
    if kind == "circle":
        return Shape("ellipse", (a, a, b, b), (255, 255, 255, 255))
    if kind == "squircle":
        return Shape("rrect", (a, a, b, b), (255, 255, 255, 255), radius=(b - a) * 0.24)
    r, c = (b - a) / 2, d / 2
    points: list[float] = []
    for i in range(6):
        angle = math.radians(60 * i - 90)
        points += [c + r * math.cos(angle), c + r * math.sin(angle)]
    return Shape("polygon", tuple(points), (255, 255, 255, 255))


def _outline_mask(kind: str, d: int, inset: float, ss: int = 3) -> Image.Image:
    """A (d, d) "L" mask of the emblem outline, drawn `ss` times larger (a smooth edge)."""
    big = Image.new("L", (d * ss, d * ss), 0)
    draw_shape(ImageDraw.Draw(big), _emblem_outline(kind, d, inset), scale=ss, mask=True)
    return big.reduce(ss)


def _emblem(size: tuple[int, int], ctx: Context) -> Image.Image:
    """Transparent canvas with the composition cut into a sticker-like emblem."""
    w, h = size
    d = max(8, round(min(w, h * 0.72) * 0.84))
    kind = ctx.rng.choice(("circle", "squircle", "hexagon"))
    alpha = _outline_mask(kind, d, 0)
    inner = _outline_mask(kind, d, d * 0.035)
    x0, y0 = (w - d) // 2, max(0, round(h * 0.41 - d / 2))
    art = render_scene((d, d), ctx)
    rim_colour = mix(ctx.palette[0], (255, 255, 255), 0.8)
    art.paste(rim_colour, (0, 0), ImageChops.subtract(alpha, inner))
    gloss = soft_mask((d, d), [circle(d * 0.5, d * 0.05, d * 0.55, fill=(255,) * 4)], d * 0.05)
    art.paste((255, 255, 255), (0, 0), fade(ImageChops.multiply(gloss, inner), 0.14))
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    shadow = Image.new("L", size, 0)
    shadow.paste(
        fade(alpha.filter(ImageFilter.BoxBlur(d * 0.015)), 0.4),
        (x0 + round(d * 0.015), y0 + round(d * 0.035)),
    )
    canvas.putalpha(shadow)
    art_rgba = art.convert("RGBA")
    art_rgba.putalpha(alpha)
    canvas.alpha_composite(art_rgba, (x0, y0))
    return canvas


# --------------------------------------------------------------------------- overlays


def _reference_strip(
    canvas: Image.Image,
    region: tuple[int, int, int, int],
    references: Sequence[Image.Image],
    ctx: Context,
) -> None:
    """Small framed, slightly rotated thumbnails of the references, top right of `region`."""
    if not references:
        return
    rx0, ry0, rx1, ry1 = region
    u = min(rx1 - rx0, ry1 - ry0)
    box = max(16, round(u * 0.15))
    border = max(2, round(box * 0.06))
    x = rx1 - round(u * 0.04)
    y = ry0 + round(u * 0.04)
    for reference in list(references)[:4]:
        thumb = ImageOps.contain(reference.convert("RGBA"), (box, box), Resampling.BILINEAR)
        frame = Image.new("RGBA", (thumb.width + 2 * border, thumb.height + 3 * border), (250, 250, 246, 255))
        frame.alpha_composite(thumb, (border, border))
        frame = frame.rotate(ctx.rng.uniform(-7, 7), Resampling.BICUBIC, expand=True)
        shadow = masked_colour(
            frame.size, (0, 0, 0), fade(frame.getchannel("A").filter(ImageFilter.BoxBlur(3)), 0.4)
        )
        x -= frame.width
        if x < rx0 + (rx1 - rx0) // 2:
            break
        canvas.alpha_composite(shadow, (x + border // 2, y + border))
        canvas.alpha_composite(frame, (x, y))
        x -= round(box * 0.08)


def _overlays(
    canvas: Image.Image, region: tuple[int, int, int, int], job: ImageJob, index: int, ctx: Context
) -> None:
    _reference_strip(canvas, region, reference_images(job), ctx)
    card(canvas, region, job.prompt, ctx)
    caption(canvas, region, job, index)


def _composition(
    size: tuple[int, int],
    job: ImageJob,
    index: int,
    ctx: Context,
    overlay_region: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    if job.background == "transparent":
        canvas = _emblem(size, ctx)
    else:
        canvas = render_scene(size, ctx).convert("RGBA")
    _overlays(canvas, overlay_region or (0, 0, *size), job, index, ctx)
    return canvas


# --------------------------------------------------------------------------- edits


def _inner_region(editable: Image.Image, bbox: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A rectangle inside the editable area for the card and caption, relative to `bbox`:
    the bounding box itself for rectangular masks, shrunk about its centre for round ones."""
    x0, y0, x1, y1 = bbox
    w, h = x1 - x0, y1 - y0
    for factor in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5):
        dx, dy = round(w * (1 - factor) / 2), round(h * (1 - factor) / 2)
        inner = (dx, dy, w - dx, h - dy)
        crop = editable.crop((x0 + inner[0], y0 + inner[1], x0 + inner[2], y0 + inner[3]))
        if crop.getextrema()[0] == 255:
            return inner
    return (0, 0, w, h)


def _base_image(job: ImageJob) -> Image.Image:
    base = job.images[0].image
    if base.size != (job.width, job.height):
        base = base.resize((job.width, job.height), Resampling.LANCZOS)
    return base.convert("RGBA") if base.mode != "RGBA" else base


def _edit_mask(job: ImageJob) -> Image.Image | None:
    """Binary "L" mask, 255 where the edit may paint (the job mask is 0 there)."""
    if job.mask is None:
        return None
    mask = job.mask.alpha()
    if mask.size != (job.width, job.height):
        mask = mask.resize((job.width, job.height), Resampling.NEAREST)
    return mask.point([255] + [0] * 255)


def _masked_edit(
    base: Image.Image, editable: Image.Image, job: ImageJob, index: int, ctx: Context
) -> Image.Image:
    bbox = editable.getbbox()
    if bbox is None:
        return base.copy()
    region_size = (bbox[2] - bbox[0], bbox[3] - bbox[1])
    art = _composition(region_size, job, index, ctx, _inner_region(editable, bbox))
    painted = base.copy()
    painted.paste(art, bbox[:2])
    return Image.composite(painted, base, editable)


def _restyled_edit(base: Image.Image, job: ImageJob, index: int, ctx: Context) -> Image.Image:
    size = base.size
    rgb = base.convert("RGB")
    dark, light = mix(ctx.palette[0], INK_DARK, 0.75), mix(ctx.palette[1], PAPER, 0.7)
    tinted = ImageOps.colorize(rgb.convert("L"), dark, light, mid=ctx.palette[2])
    styled = ImageOps.posterize(Image.blend(rgb, tinted, 0.5), 3 + min(3, ctx.level // 2))
    mixed = Image.blend(styled, render_scene(size, ctx), 0.35).convert("RGBA")
    if job.background == "transparent":
        mixed.putalpha(base.getchannel("A"))
    _overlays(mixed, (0, 0, *size), job, index, ctx)
    return mixed


# --------------------------------------------------------------------------- entry points


def render(job: ImageJob, index: int) -> Image.Image:
    """Image `index` of `job`: an RGBA image of exactly (job.width, job.height)."""
    ctx = context_for(job, index)
    size = (job.width, job.height)
    if job.kind == "edit" and job.images:
        base = _base_image(job)
        editable = _edit_mask(job)
        if editable is not None:
            return _masked_edit(base, editable, job, index, ctx)
        return _restyled_edit(base, job, index, ctx)
    return _composition(size, job, index, ctx)


def partial(final: Image.Image, k: int, total: int) -> Image.Image:
    """The k-th (0-based) of `total` previews of `final`: a mosaic that sharpens with k.

    The last preview is close to, never equal to, the final image (same size and mode)."""
    total = max(1, total)
    k = min(max(0, k), total - 1)
    w, h = final.size
    progress = (k + 1) / (total + 1)  # strictly between 0 and 1
    coarse, fine = 1 / 48, 1 / 2
    scale = coarse * (fine / coarse) ** progress
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    reduced = final.resize(small, Resampling.BOX)
    resample = Resampling.NEAREST if progress < 0.34 else Resampling.BILINEAR
    preview = reduced.resize((w, h), resample)
    if resample is Resampling.NEAREST:
        preview = Image.blend(preview, reduced.resize((w, h), Resampling.BILINEAR), 0.4)
    return preview if preview.mode == final.mode else preview.convert(final.mode)
