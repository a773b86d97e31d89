"""The six layout families: orbits, diagonal bands, a Bauhaus tile grid, a mountain
horizon, bokeh lights and paper-cut waves. Each paints on an RGB scene in place."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from PIL import Image, ImageChops, ImageDraw, ImageFilter
from PIL.Image import Resampling

from imagegate.engines.placeholder.context import STRUCTURE, Context
from imagegate.engines.placeholder.drawing import Shape, circle, fade, glow, paint, soft_mask, stars
from imagegate.engines.placeholder.palette import INK_DARK, RGB, mix, with_alpha

# --------------------------------------------------------------------------- orbits


def _layout_orbits(scene: Image.Image, ctx: Context) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    cx, cy = w * rng.uniform(0.32, 0.68), h * rng.uniform(0.3, 0.5)
    tilt = rng.uniform(0.35, 1.0)
    stars(scene, ctx, 20 + 25 * ctx.level)
    sun_r = u * rng.uniform(0.07, 0.12)
    sun = ctx.palette[0]
    glow(scene, cx, cy, sun_r * 3.2, mix(sun, (255, 255, 255), 0.2), 0.55)
    rings, planets = [], []
    step = u * rng.uniform(0.07, 0.1)
    line = max(1.0, u * 0.004)
    for i in range(3 + STRUCTURE // 2 + rng.randint(0, 1)):
        radius = sun_r * 1.6 + step * (i + 1)
        colour = mix(ctx.palette[(i + 1) % len(ctx.palette)], (255, 255, 255), 0.35)
        rings.append(
            Shape(
                "ellipse",
                (cx - radius, cy - radius * tilt, cx + radius, cy + radius * tilt),
                None,
                with_alpha(colour, 140),
                line,
            )
        )
        for _ in range(rng.choice((1, 1, 2))):
            angle = rng.uniform(0, math.tau)
            px, py = cx + radius * math.cos(angle), cy + radius * tilt * math.sin(angle)
            pr = u * rng.uniform(0.014, 0.022 + 0.006 * ctx.level)
            planets.append((px, py, pr, ctx.pick()))
    paint(scene, ctx, rings, shadow=0)
    paint(scene, ctx, [circle(cx, cy, sun_r, fill=with_alpha(sun, 255))], shadow=1.5)
    paint(
        scene,
        ctx,
        [
            circle(
                cx - sun_r * 0.3,
                cy - sun_r * 0.3,
                sun_r * 0.55,
                fill=with_alpha(mix(sun, (255, 255, 255), 0.35), 150),
            )
        ],
        shadow=0,
    )
    for px, py, pr, colour in planets:
        shine = mix(colour, (255, 255, 255), 0.45)
        dx, dy = (cx - px), (cy - py)
        norm = math.hypot(dx, dy) or 1.0
        hx, hy = px + dx / norm * pr * 0.35, py + dy / norm * pr * 0.35
        paint(
            scene,
            ctx,
            [circle(px, py, pr, fill=with_alpha(colour, 255))],
            shadow=0.6,
            direction=(-dx / norm, -dy / norm),
        )
        paint(scene, ctx, [circle(hx, hy, pr * 0.45, fill=with_alpha(shine, 170))], shadow=0)


# --------------------------------------------------------------------------- bands


def _band_polygon(w: int, h: int, angle: float, t0: float, t1: float) -> tuple[float, ...]:
    dx, dy = math.cos(angle), math.sin(angle)
    nx, ny = -dy, dx
    cx, cy, reach = w / 2, h / 2, math.hypot(w, h)
    corners = []
    for t, s in ((t0, -reach), (t0, reach), (t1, reach), (t1, -reach)):
        corners += [cx + nx * t + dx * s, cy + ny * t + dy * s]
    return tuple(corners)


def _layout_bands(scene: Image.Image, ctx: Context) -> None:
    rng, (w, h) = ctx.rng, scene.size
    angle = math.radians(rng.uniform(20, 65) * rng.choice((1, -1)))
    reach = math.hypot(w, h) / 2
    count = 4 + STRUCTURE + rng.randint(0, 2)
    weights = [rng.uniform(0.4, 1.6) for _ in range(count)]
    start = -reach * rng.uniform(0.1, 0.5)
    span = reach * 1.6
    t = start
    for i, weight in enumerate(weights):
        width = span * weight / sum(weights)
        if rng.random() < 0.75:
            colour = ctx.palette[i % len(ctx.palette)]
            alpha = rng.randint(170, 245)
            poly = _band_polygon(w, h, angle, t, t + width * rng.uniform(0.55, 1.0))
            paint(scene, ctx, [Shape("polygon", poly, with_alpha(colour, alpha))], shadow=1.2)
        t += width
    u = min(w, h)
    cx, cy, r = w * rng.uniform(0.25, 0.75), h * rng.uniform(0.25, 0.6), u * rng.uniform(0.12, 0.2)
    sun = mix(ctx.pick(), (255, 255, 255), 0.25)
    paint(scene, ctx, [circle(cx, cy, r, fill=with_alpha(sun, 235))], shadow=1.5)
    ring = circle(cx, cy, r * 1.35, outline=(255, 255, 255, 120), width=max(1.0, u * 0.005))
    paint(scene, ctx, [ring], shadow=0)


# --------------------------------------------------------------------------- tiles


def _tile_motif(tile: Image.Image, ctx: Context, colour: RGB) -> None:
    rng, (s, _) = ctx.rng, tile.size
    draw = ImageDraw.Draw(tile, "RGBA")
    accent = with_alpha(colour, 235)
    motif = rng.choice(("circle", "quarter", "half", "triangle", "rings", "dots", "none"))
    if motif == "circle":
        m = s * rng.uniform(0.18, 0.3)
        draw.ellipse((m, m, s - m, s - m), fill=accent)
    elif motif == "quarter":
        corner = rng.choice(((0, 0), (s, 0), (0, s), (s, s)))
        draw.ellipse((corner[0] - s, corner[1] - s, corner[0] + s, corner[1] + s), fill=accent)
    elif motif == "half":
        draw.pieslice((0, s * 0.5 - s * 0.5, s, s * 1.5), 180, 360, fill=accent)
    elif motif == "triangle":
        points = rng.choice((((0, 0), (s, 0), (0, s)), ((s, 0), (s, s), (0, s))))
        draw.polygon(points, fill=accent)
    elif motif == "rings":
        for i in range(1, 4):
            m = s * 0.12 * i
            draw.ellipse((m, m, s - m, s - m), outline=accent, width=max(1, round(s * 0.04)))
    elif motif == "dots":
        n = 3 + ctx.level // 2
        step = s / (n + 1)
        for i in range(1, n + 1):
            for j in range(1, n + 1):
                r = step * 0.22
                draw.ellipse((i * step - r, j * step - r, i * step + r, j * step + r), fill=accent)


def _layout_tiles(scene: Image.Image, ctx: Context) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    cols = max(2, round((3 + STRUCTURE // 2 + rng.randint(0, 1)) * w / u))
    margin, gap = u * 0.07, u * 0.025
    tile = (w - 2 * margin - gap * (cols - 1)) / cols
    rows = max(1, int((h - 2 * margin + gap) // (tile + gap)))
    top = (h - rows * tile - (rows - 1) * gap) / 2
    side = max(2, round(tile))
    radius = side * 0.16
    boxes = []
    for r in range(rows):
        for c in range(cols):
            x, y = margin + c * (tile + gap), top + r * (tile + gap)
            boxes.append(Shape("rrect", (x, y, x + side, y + side), (255, 255, 255, 255), radius=radius))
    paint(scene, ctx, boxes, shadow=1.0, direction=(0.3, 1.0))
    shape_mask = Image.new("L", (side * 2, side * 2), 0)
    ImageDraw.Draw(shape_mask).rounded_rectangle(
        (0, 0, side * 2 - 1, side * 2 - 1), radius=radius * 2, fill=255
    )
    shape_mask = shape_mask.resize((side, side), Resampling.BOX)
    for box in boxes:
        colours = rng.sample(ctx.palette, 2)
        face = Image.new("RGB", (side, side), colours[0])
        _tile_motif(face, ctx, colours[1] if rng.random() < 0.85 else ctx.bg[0])
        scene.paste(face, (round(box.xy[0]), round(box.xy[1])), shape_mask)


# --------------------------------------------------------------------------- horizon


def _ridge(rng: random.Random, w: int, base: float, rough: float, points: int) -> list[float]:
    heights = [0.0, 0.0]
    spread = rough
    while len(heights) < points:
        refined = []
        for a, b in zip(heights, heights[1:], strict=False):
            refined += [a, (a + b) / 2 + rng.uniform(-spread, spread)]
        heights = refined + [heights[-1]]
        spread *= 0.55
    step = w / (len(heights) - 1)
    xy: list[float] = []
    for i, v in enumerate(heights):
        xy += [i * step, base + v]
    return xy


def _layout_horizon(scene: Image.Image, ctx: Context) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    if ctx.dark:
        stars(scene, ctx, 25 + 25 * ctx.level, top=0.55)
    sx, sy, sr = w * rng.uniform(0.2, 0.8), h * rng.uniform(0.2, 0.4), u * rng.uniform(0.07, 0.12)
    sun = mix(ctx.palette[0], (255, 255, 240), 0.45)
    glow(scene, sx, sy, sr * 3, sun, 0.5)
    paint(scene, ctx, [circle(sx, sy, sr, fill=with_alpha(sun, 250))], shadow=0)
    layers = 3 + STRUCTURE // 2 + rng.randint(0, 1)
    far, near = ctx.bg[2], mix(ctx.palette[1], INK_DARK, 0.7)
    points = 65
    for i in range(layers):
        t = i / max(1, layers - 1)
        base = h * (0.5 + 0.35 * t)
        tone = mix(mix(far, ctx.palette[(i + 2) % len(ctx.palette)], 0.45), near, t * 0.9)
        ridge = _ridge(rng, w, base, h * (0.18 - 0.08 * t), points)
        poly = (*ridge, w, h, 0, h)
        paint(
            scene,
            ctx,
            [Shape("polygon", tuple(poly), with_alpha(tone, 255))],
            shadow=0.8,
            direction=(0.0, -1.0),
        )


# --------------------------------------------------------------------------- bokeh


def _layout_bokeh(scene: Image.Image, ctx: Context) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    for layer, scale in ((0, 0.5), (1, 1.0)):  # far lights at half size, near ones sharper
        lw, lh = max(1, round(w * scale)), max(1, round(h * scale))
        lights = Image.new("RGB", (lw, lh), (0, 0, 0))
        draw = ImageDraw.Draw(lights, "RGBA")
        count = (8 + 4 * STRUCTURE) if layer == 0 else (10 + 6 * ctx.level)  # the big ones: composition
        lr = ctx.fork()  # the same first lights at every level, more of them at higher ones
        for _ in range(count):
            r = u * scale * (lr.uniform(0.05, 0.16) if layer == 0 else lr.uniform(0.015, 0.05))
            x, y = lr.uniform(0, lw), lr.uniform(0, lh)
            colour = mix(ctx.palette[lr.randrange(len(ctx.palette))], (255, 255, 255), lr.uniform(0.0, 0.4))
            alpha = lr.randint(60, 130) if layer == 0 else lr.randint(110, 200)
            draw.ellipse(
                (x - r, y - r, x + r, y + r),
                fill=with_alpha(colour, alpha),
                outline=with_alpha(colour, min(255, alpha + 50)),
                width=max(1, round(r * 0.08)),
            )
        radius = u * scale * (0.02 if layer == 0 else 0.002 + 0.001 * (ctx.level % 3))
        lights = lights.filter(ImageFilter.GaussianBlur(max(0.8, radius)))
        if scale != 1.0:
            lights = lights.resize((w, h), Resampling.BILINEAR)
        scene.paste(ImageChops.screen(scene, lights))
    streak = _band_polygon(w, h, math.radians(rng.uniform(-60, -30)), -u * 0.05, u * 0.12)
    mask = soft_mask((w, h), [Shape("polygon", streak, (255, 255, 255, 255))], blur=u * 0.08)
    scene.paste(mix(ctx.palette[0], (255, 255, 255), 0.6), (0, 0), fade(mask, 0.12))


# --------------------------------------------------------------------------- waves


def _layout_waves(scene: Image.Image, ctx: Context) -> None:
    rng, (w, h) = ctx.rng, scene.size
    count = 4 + STRUCTURE // 2 + rng.randint(0, 1)
    steps = 32 if ctx.level < 3 else 72
    glow(scene, w * rng.uniform(0.2, 0.8), h * 0.2, min(w, h) * 0.25, ctx.palette[0], 0.35)
    for i in range(count):
        base = h * (0.32 + 0.6 * i / count)
        amp = h * rng.uniform(0.025, 0.07)
        freq, phase = rng.uniform(0.7, 2.2), rng.uniform(0, math.tau)
        freq2, phase2 = rng.uniform(2.5, 4.5), rng.uniform(0, math.tau)
        xy: list[float] = []
        for s in range(steps + 1):
            x = w * s / steps
            theta = x / w * math.tau
            y = base + amp * math.sin(theta * freq + phase) + amp * 0.3 * math.sin(theta * freq2 + phase2)
            xy += [x, y]
        xy += [w, h, 0, h]
        colour = mix(ctx.palette[i % len(ctx.palette)], ctx.bg[0], 0.15 * (count - i) / count)
        paint(
            scene,
            ctx,
            [Shape("polygon", tuple(xy), with_alpha(colour, 255))],
            shadow=1.0,
            direction=(0.0, -1.0),
        )


LAYOUT_FUNCTIONS: dict[str, Callable[[Image.Image, Context], None]] = {
    "orbits": _layout_orbits,
    "bands": _layout_bands,
    "tiles": _layout_tiles,
    "horizon": _layout_horizon,
    "bokeh": _layout_bokeh,
    "waves": _layout_waves,
}
