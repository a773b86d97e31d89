"""Deterministic placeholder artwork for the offline engine (Pillow only).

`render(job, index)` paints image `index` of a job: a composition derived from the prompt,
meant to look like something rather than a grey box, with the prompt itself on a frosted
card and a small caption ("imagegate · placeholder · seed 1234 · 1024x1024 · medium").

How it is made
    * Palette: colour words in the prompt (English and Chinese: "red"/"红", "navy"/"藏青",
      ...), then a few mood words ("autumn"/"秋", "ocean"/"海", "neon"/"霓虹", ...), plus
      dominant colours of the reference images; with none of these, a harmonious palette
      derived from the prompt's hash (so one prompt keeps its colours across seeds).
    * Layout: one of six families picked by the job's hash (orbits, diagonal bands, a
      Bauhaus tile grid, a mountain horizon, bokeh lights, paper-cut waves), drawn at a
      reduced working resolution and scaled up (which also anti-aliases the shapes), with
      soft shadows. Text, card and caption are drawn at full resolution.
    * Detail: `job.quality` (low/medium/high) and `job.effort` (low/medium/high/None) give a
      detail level 0..6 (quality counts twice, effort shifts it by one). Higher levels mean
      more shapes, finer curves, shadows (none at level 0), film grain (none below 2) and a
      larger working resolution; low levels are faster.
    * Transparency: with background "transparent" the backdrop has alpha 0 and the
      composition becomes a sticker-like emblem (circle, rounded square or hexagon with a
      soft drop shadow); only the emblem, its shadow, the card and the text carry alpha.
      With "opaque" every pixel has alpha 255.
    * Edits: the base is `job.images[0]` (resized with LANCZOS only when the job size
      differs). With a mask (0 = edit here) the composition, card included, is placed in
      the bounding box of the editable area and composited through the binary mask, so
      every pixel whose mask value is not 0 is bit-identical to the (resized) base. Without
      a mask the whole base is tinted toward the palette, posterised and blended with the
      composition (35 %); a transparent unmasked edit keeps the base's own alpha channel.
    * Reference images (all of them for generations, those after the first for edits)
      feed the palette and appear as small framed, slightly rotated thumbnails.
    * Determinism: all randomness comes from `random.Random` seeded with a SHA-256 of the
      job's prompt, seed, index, size, quality, background, effort, kind, the bytes of the
      input images and the mask, so the same job and index give byte-identical pixels.

`partial(final, k, total)` makes the k-th of `total` progressively sharper previews.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps, ImageStat

from imagegate.domain import ImageJob

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_T = TypeVar("_T")

_FONT_PACKAGE = "noto_cjk_sans_otc"
_FONT_FILE = "NotoSansCJK-Regular.ttc"

_BILINEAR = Image.Resampling.BILINEAR
_BICUBIC = Image.Resampling.BICUBIC
_LANCZOS = Image.Resampling.LANCZOS
_NEAREST = Image.Resampling.NEAREST
_BOX = Image.Resampling.BOX

_INK_DARK: RGB = (10, 12, 22)
_PAPER: RGB = (250, 248, 244)

# --------------------------------------------------------------------------- colour words

_ENGLISH_COLOURS: dict[str, RGB] = {
    "sky blue": (110, 180, 240),
    "light blue": (140, 190, 240),
    "dark blue": (25, 50, 120),
    "dark green": (20, 90, 50),
    "light green": (150, 215, 140),
    "red": (220, 50, 47),
    "crimson": (190, 25, 55),
    "scarlet": (235, 45, 30),
    "maroon": (128, 20, 40),
    "blue": (38, 110, 220),
    "azure": (60, 150, 240),
    "navy": (22, 38, 92),
    "indigo": (75, 50, 160),
    "green": (46, 160, 87),
    "emerald": (25, 155, 110),
    "lime": (160, 215, 60),
    "olive": (128, 128, 50),
    "mint": (150, 225, 190),
    "yellow": (245, 205, 48),
    "purple": (130, 60, 180),
    "violet": (150, 90, 220),
    "lavender": (180, 160, 230),
    "magenta": (210, 40, 150),
    "orange": (245, 135, 35),
    "pink": (240, 130, 170),
    "coral": (250, 120, 100),
    "peach": (250, 185, 150),
    "black": (18, 18, 24),
    "white": (245, 245, 240),
    "grey": (128, 130, 136),
    "gray": (128, 130, 136),
    "golden": (218, 170, 50),
    "gold": (212, 175, 55),
    "silver": (192, 196, 206),
    "brown": (125, 80, 50),
    "chocolate": (100, 60, 35),
    "beige": (225, 205, 170),
    "cream": (245, 235, 205),
    "cyan": (40, 200, 220),
    "teal": (0, 128, 128),
    "turquoise": (64, 210, 200),
}

_CHINESE_COLOURS: dict[str, RGB] = {
    "天蓝": (110, 180, 240),
    "深蓝": (25, 50, 120),
    "藏青": (22, 38, 92),
    "海军蓝": (22, 38, 92),
    "蓝绿": (0, 128, 128),
    "粉红": (240, 130, 170),
    "洋红": (210, 40, 150),
    "品红": (210, 40, 150),
    "米色": (225, 205, 170),
    "咖啡": (110, 70, 45),
    "红": (220, 50, 47),
    "蓝": (38, 110, 220),
    "绿": (46, 160, 87),
    "黄": (245, 205, 48),
    "紫": (130, 60, 180),
    "橙": (245, 135, 35),
    "橘": (245, 135, 35),
    "粉": (240, 130, 170),
    "黑": (18, 18, 24),
    "白": (245, 245, 240),
    "灰": (128, 130, 136),
    "金": (212, 175, 55),
    "银": (192, 196, 206),
    "棕": (125, 80, 50),
    "褐": (125, 80, 50),
    "青": (40, 200, 220),
    "靛": (75, 50, 160),
}


_MOODS: dict[str, tuple[RGB, RGB]] = {
    "autumn": ((230, 125, 40), (140, 70, 40)),
    "fall": ((230, 125, 40), (140, 70, 40)),
    "sunset": ((250, 140, 90), (120, 60, 140)),
    "sunrise": ((250, 180, 110), (240, 120, 140)),
    "ocean": ((20, 90, 160), (60, 200, 200)),
    "sea": ((20, 90, 160), (60, 200, 200)),
    "forest": ((40, 110, 60), (120, 150, 70)),
    "night": ((22, 30, 80), (90, 70, 160)),
    "snow": ((225, 238, 250), (150, 180, 215)),
    "winter": ((225, 238, 250), (150, 180, 215)),
    "fire": ((235, 80, 35), (250, 190, 60)),
    "spring": ((245, 170, 200), (140, 210, 110)),
    "desert": ((230, 195, 140), (200, 110, 70)),
    "neon": ((240, 50, 190), (40, 220, 240)),
    "cyberpunk": ((240, 50, 190), (40, 220, 240)),
    "秋": ((230, 125, 40), (140, 70, 40)),
    "日落": ((250, 140, 90), (120, 60, 140)),
    "夕阳": ((250, 140, 90), (120, 60, 140)),
    "海": ((20, 90, 160), (60, 200, 200)),
    "森林": ((40, 110, 60), (120, 150, 70)),
    "夜": ((22, 30, 80), (90, 70, 160)),
    "雪": ((225, 238, 250), (150, 180, 215)),
    "冬": ((225, 238, 250), (150, 180, 215)),
    "火": ((235, 80, 35), (250, 190, 60)),
    "春": ((245, 170, 200), (140, 210, 110)),
    "沙漠": ((230, 195, 140), (200, 110, 70)),
    "霓虹": ((240, 50, 190), (40, 220, 240)),
    "赛博朋克": ((240, 50, 190), (40, 220, 240)),
}


def _word_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """Latin words match whole (with an optional plural s); Chinese ones anywhere."""
    ordered = sorted(words, key=len, reverse=True)
    latin = "|".join(re.escape(w) for w in ordered if w.isascii())
    hanzi = "|".join(re.escape(w) for w in ordered if not w.isascii())
    return re.compile(rf"(?<![a-z])(?:{latin})(?:s)?(?![a-z])|{hanzi}", re.IGNORECASE)


@cache
def _colour_pattern() -> re.Pattern[str]:
    return _word_pattern([*_ENGLISH_COLOURS, *_CHINESE_COLOURS])


@cache
def _mood_pattern() -> re.Pattern[str]:
    return _word_pattern(list(_MOODS))


def _lookup(table: dict[str, _T], word: str) -> _T | None:
    word = word.lower()
    if word in table:
        return table[word]
    return table.get(word[:-1]) if word.endswith("s") else None


def mood_colours(prompt: str) -> list[RGB]:
    """Two colours for each mood word (autumn/秋, ocean/海, night/夜, neon/霓虹, ...)."""
    found: list[RGB] = []
    for match in _mood_pattern().finditer(prompt):
        pair = _lookup(_MOODS, match.group(0))
        for rgb in pair or ():
            if rgb not in found:
                found.append(rgb)
    return found


def colour_words(prompt: str) -> list[RGB]:
    """Colours named in the prompt, in order of first appearance, without repeats."""
    found: list[RGB] = []
    table = {**_ENGLISH_COLOURS, **_CHINESE_COLOURS}
    for match in _colour_pattern().finditer(prompt):
        rgb = _lookup(table, match.group(0))
        if rgb is not None and rgb not in found:
            found.append(rgb)
    return found


def dominant_colours(image: Image.Image, count: int = 3) -> list[RGB]:
    """The `count` most common colours of a small quantised thumbnail of `image`."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA")
    width, height = image.size
    scale = 48 / max(width, height, 1)
    thumb_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    thumb = image.resize(thumb_size, _BOX).convert("RGB")
    quantised = thumb.quantize(colors=max(count * 2, 4))
    flat = quantised.getpalette() or []
    counted = sorted(quantised.getcolors() or [], key=lambda item: (-item[0], item[1]))
    colours: list[RGB] = []
    for _, idx in counted:
        rgb = (flat[idx * 3], flat[idx * 3 + 1], flat[idx * 3 + 2])
        if all(_distance(rgb, other) > 40 for other in colours):
            colours.append(rgb)
        if len(colours) == count:
            break
    return colours


def palette_for(prompt: str, references: Sequence[Image.Image] = ()) -> list[RGB]:
    """Five RGB colours for a prompt: its colour words (then colours of mood words such as
    "autumn" or "海"), then the references' dominant colours, extended with harmonious
    variations; with none of these, a scheme derived from the prompt's hash."""
    base = colour_words(prompt)[:4]
    for rgb in mood_colours(prompt)[: 4 - min(len(base), 2)]:
        if len(base) < 4 and rgb not in base:
            base.append(rgb)
    for reference in references[:4]:
        for rgb in dominant_colours(reference, 2):
            if all(_distance(rgb, other) > 40 for other in base):
                base.append(rgb)
    if not base:
        return _hash_palette(hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest())
    return _extend_palette(base[:5], 5)


_SCHEMES: tuple[tuple[float, ...], ...] = (
    (0.0, 0.08, 0.16, -0.08, 0.5),  # analogous with a complementary accent
    (0.0, 0.33, 0.67, 0.04, 0.37),  # triadic
    (0.0, 0.45, 0.55, 0.03, 0.5),  # split complementary
    (0.0, 0.5, 0.05, 0.55, 0.25),  # complementary pairs
)
_LIGHTNESS = (0.56, 0.62, 0.5, 0.7, 0.6)


def _hash_palette(digest: bytes) -> list[RGB]:
    hue = int.from_bytes(digest[:2], "big") / 65536
    scheme = _SCHEMES[digest[2] % len(_SCHEMES)]
    saturation = 0.5 + digest[3] / 255 * 0.32
    return [
        _hls(hue + offset, _LIGHTNESS[i], saturation - 0.06 * (i % 2))
        for i, offset in enumerate(scheme)
    ]


def _extend_palette(colours: list[RGB], size: int) -> list[RGB]:
    variations = ((0.0, 0.16, 0.0), (0.07, -0.14, -0.1), (-0.08, 0.08, 0.05), (0.5, 0.0, -0.2))
    result = list(colours)
    step = 0
    while len(result) < size:
        h, lightness, s = colorsys.rgb_to_hls(*(v / 255 for v in colours[step % len(colours)]))
        dh, dl, ds = variations[(step // len(colours)) % len(variations)]
        if s < 0.08:  # achromatic: vary lightness only, with a hint of cool blue
            dh, ds, s, h = 0.0, 0.0, 0.12, 0.6
        result.append(_hls(h + dh, _clamp(lightness + dl, 0.12, 0.9), _clamp(s + ds, 0.0, 1.0)))
        step += 1
    return result


def _hls(hue: float, lightness: float, saturation: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _distance(a: RGB, b: RGB) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _luma(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _with_alpha(c: RGB, alpha: int) -> RGBA:
    return (c[0], c[1], c[2], alpha)


# --------------------------------------------------------------------------- fonts


@cache
def _font_source() -> tuple[str, int] | None:
    """Path of the Noto Sans CJK collection and the index of its Simplified Chinese face."""
    try:
        resource = resources.files(_FONT_PACKAGE).joinpath(_FONT_FILE)
    except (ModuleNotFoundError, TypeError):
        return None
    if not isinstance(resource, Path) or not resource.is_file():
        return None
    path = str(resource)
    for index in (2, *range(10)):
        try:
            family, _ = ImageFont.truetype(path, 12, index=index).getname()
        except OSError:
            break
        if family and family.endswith(" SC") and "Mono" not in family:
            return path, index
    return path, 0


@cache
def _font(size: int) -> Font:
    source = _font_source()
    if source is not None:
        return ImageFont.truetype(source[0], size, index=source[1])
    return ImageFont.load_default(size)


# --------------------------------------------------------------------------- context


@dataclass(slots=True)
class _Ctx:
    rng: random.Random
    palette: list[RGB]
    level: int  # detail level 0..6
    dark: bool = True
    bg: tuple[RGB, RGB, RGB] = ((0, 0, 0), (0, 0, 0), (0, 0, 0))
    layout: str = "orbits"

    def pick(self, start: int = 0) -> RGB:
        return self.palette[self.rng.randrange(start, len(self.palette))]


_QUALITY_LEVEL = {"low": 0, "medium": 2, "high": 4}
_EFFORT_SHIFT = {"low": -1, "medium": 0, "high": 1}
_LAYOUTS = ("orbits", "bands", "tiles", "horizon", "bokeh", "waves")


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
        job.quality,
        job.background,
        str(job.effort),
        job.kind,
    ):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    for image in job.images:
        h.update(hashlib.sha256(image.data).digest())
    if job.mask is not None:
        h.update(job.mask.mode.encode() + repr(job.mask.size).encode())
        h.update(hashlib.sha256(job.mask.tobytes()).digest())
    return h.digest()


def _references(job: ImageJob) -> list[Image.Image]:
    images = job.images[1:] if job.kind == "edit" else job.images
    return [item.image for item in images]


def _context(job: ImageJob, index: int) -> _Ctx:
    rng = random.Random(int.from_bytes(_job_digest(job, index), "big"))
    palette = palette_for(job.prompt, _references(job))
    rng.shuffle(palette)
    ctx = _Ctx(rng=rng, palette=palette, level=detail_level(job.quality, job.effort))
    ctx.layout = rng.choice(_LAYOUTS)
    ctx.dark = ctx.layout in ("bokeh", "orbits") or rng.random() < 0.45
    ink = _INK_DARK if ctx.dark else _PAPER
    strength = (0.74, 0.62, 0.5) if ctx.dark else (0.8, 0.7, 0.35)
    ctx.bg = (
        _mix(palette[0], ink, strength[0]),
        _mix(palette[1], ink, strength[1]),
        _mix(palette[2], ink if ctx.dark else (255, 255, 255), strength[2]),
    )
    return ctx


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: str  # ellipse, polygon, rrect, pie, line
    xy: tuple[float, ...]
    fill: RGBA | None = None
    outline: RGBA | None = None
    width: float = 0
    radius: float = 0
    angles: tuple[float, float] = (0, 360)


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: _Shape,
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
        draw.rounded_rectangle(
            xy, radius=shape.radius * scale, fill=fill, outline=outline, width=width
        )
    elif shape.kind == "pie":
        draw.pieslice(xy, shape.angles[0], shape.angles[1], fill=fill)
    elif shape.kind == "line":
        draw.line(xy, fill=outline, width=width, joint="curve")


def _circle(
    x: float,
    y: float,
    r: float,
    fill: RGBA | None = None,
    outline: RGBA | None = None,
    width: float = 0,
) -> _Shape:
    return _Shape("ellipse", (x - r, y - r, x + r, y + r), fill, outline, width)


def _soft_mask(
    size: tuple[int, int],
    shapes: Sequence[_Shape],
    blur: float,
    offset: tuple[float, float] = (0, 0),
    scale: float = 0.25,
) -> Image.Image:
    """An "L" mask of `shapes`, drawn small, blurred and scaled back up (cheap softness)."""
    small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    mask = Image.new("L", small, 0)
    draw = ImageDraw.Draw(mask)
    for shape in shapes:
        _draw_shape(draw, shape, scale, offset, mask=True)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur * scale))
    return mask.resize(size, _BILINEAR)


def _fade(mask: Image.Image, opacity: float) -> Image.Image:
    return mask.point([round(v * opacity) for v in range(256)])


def _paint(
    scene: Image.Image,
    ctx: _Ctx,
    shapes: Sequence[_Shape],
    shadow: float = 1.0,
    direction: tuple[float, float] = (0.35, 1.0),
) -> None:
    """Draw `shapes` on the RGB `scene`, after a soft drop shadow when the level allows."""
    if shadow > 0 and ctx.level > 0 and shapes:
        u = min(scene.size)
        distance = u * 0.018 * shadow
        offset = (direction[0] * distance, direction[1] * distance)
        mask = _soft_mask(scene.size, shapes, blur=u * 0.025 * shadow, offset=offset)
        tone = _mix(ctx.bg[0], (0, 0, 0), 0.75)
        scene.paste(tone, (0, 0), _fade(mask, 0.45 if ctx.dark else 0.28))
    draw = ImageDraw.Draw(scene, "RGBA")
    for shape in shapes:
        _draw_shape(draw, shape)


def _glow(scene: Image.Image, x: float, y: float, r: float, colour: RGB, opacity: float) -> None:
    mask = _soft_mask(
        scene.size, [_circle(x, y, r, fill=(255, 255, 255, 255))], blur=r * 0.6, scale=0.125
    )
    scene.paste(colour, (0, 0), _fade(mask, opacity))


def _stars(scene: Image.Image, ctx: _Ctx, count: int, top: float = 1.0) -> None:
    draw = ImageDraw.Draw(scene, "RGBA")
    w, h = scene.size
    for _ in range(count):
        x, y = ctx.rng.uniform(0, w), ctx.rng.uniform(0, h * top)
        r = ctx.rng.choice((0.6, 0.8, 1.0, 1.4)) * max(1.0, min(w, h) / 600)
        a = ctx.rng.randint(90, 230)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 250, a))


# --------------------------------------------------------------------------- background


def _background(size: tuple[int, int], ctx: _Ctx) -> Image.Image:
    """A diagonal two-colour gradient with an off-centre glow, smooth from a small master."""
    rng = ctx.rng
    small = (
        (64, max(8, round(64 * size[1] / size[0])))
        if size[0] >= size[1]
        else (max(8, round(64 * size[0] / size[1])), 64)
    )
    vertical = Image.linear_gradient("L").resize(small, _BILINEAR)
    horizontal = Image.linear_gradient("L").rotate(90).resize(small, _BILINEAR)
    if rng.random() < 0.5:
        horizontal = ImageOps.mirror(horizontal)
    mask = Image.blend(vertical, horizontal, rng.uniform(0.2, 0.8))
    base = Image.composite(
        Image.new("RGB", small, ctx.bg[1]), Image.new("RGB", small, ctx.bg[0]), mask
    )
    glow = Image.radial_gradient("L").resize((small[0] * 2, small[1] * 2), _BILINEAR)
    canvas = Image.new("L", small, 255)
    gx, gy = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.6)
    canvas.paste(glow, (round(small[0] * (gx - 1)), round(small[1] * (gy - 1))))
    glow_mask = _fade(ImageOps.invert(canvas), 0.8)
    base.paste(ctx.bg[2], (0, 0), glow_mask)
    return base.resize(size, _BICUBIC)


# --------------------------------------------------------------------------- layouts


def _layout_orbits(scene: Image.Image, ctx: _Ctx) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    cx, cy = w * rng.uniform(0.32, 0.68), h * rng.uniform(0.3, 0.5)
    tilt = rng.uniform(0.35, 1.0)
    _stars(scene, ctx, 20 + 25 * ctx.level)
    sun_r = u * rng.uniform(0.07, 0.12)
    sun = ctx.palette[0]
    _glow(scene, cx, cy, sun_r * 3.2, _mix(sun, (255, 255, 255), 0.2), 0.55)
    rings, planets = [], []
    step = u * rng.uniform(0.07, 0.1)
    line = max(1.0, u * 0.004)
    for i in range(3 + ctx.level // 2 + rng.randint(0, 1)):
        radius = sun_r * 1.6 + step * (i + 1)
        colour = _mix(ctx.palette[(i + 1) % len(ctx.palette)], (255, 255, 255), 0.35)
        rings.append(
            _Shape(
                "ellipse",
                (cx - radius, cy - radius * tilt, cx + radius, cy + radius * tilt),
                None,
                _with_alpha(colour, 140),
                line,
            )
        )
        for _ in range(rng.choice((1, 1, 2))):
            angle = rng.uniform(0, math.tau)
            px, py = cx + radius * math.cos(angle), cy + radius * tilt * math.sin(angle)
            pr = u * rng.uniform(0.014, 0.022 + 0.006 * ctx.level)
            planets.append((px, py, pr, ctx.pick()))
    _paint(scene, ctx, rings, shadow=0)
    _paint(scene, ctx, [_circle(cx, cy, sun_r, fill=_with_alpha(sun, 255))], shadow=1.5)
    _paint(
        scene,
        ctx,
        [
            _circle(
                cx - sun_r * 0.3,
                cy - sun_r * 0.3,
                sun_r * 0.55,
                fill=_with_alpha(_mix(sun, (255, 255, 255), 0.35), 150),
            )
        ],
        shadow=0,
    )
    for px, py, pr, colour in planets:
        shine = _mix(colour, (255, 255, 255), 0.45)
        dx, dy = (cx - px), (cy - py)
        norm = math.hypot(dx, dy) or 1.0
        hx, hy = px + dx / norm * pr * 0.35, py + dy / norm * pr * 0.35
        _paint(
            scene,
            ctx,
            [_circle(px, py, pr, fill=_with_alpha(colour, 255))],
            shadow=0.6,
            direction=(-dx / norm, -dy / norm),
        )
        _paint(scene, ctx, [_circle(hx, hy, pr * 0.45, fill=_with_alpha(shine, 170))], shadow=0)


def _band_polygon(w: int, h: int, angle: float, t0: float, t1: float) -> tuple[float, ...]:
    dx, dy = math.cos(angle), math.sin(angle)
    nx, ny = -dy, dx
    cx, cy, reach = w / 2, h / 2, math.hypot(w, h)
    corners = []
    for t, s in ((t0, -reach), (t0, reach), (t1, reach), (t1, -reach)):
        corners += [cx + nx * t + dx * s, cy + ny * t + dy * s]
    return tuple(corners)


def _layout_bands(scene: Image.Image, ctx: _Ctx) -> None:
    rng, (w, h) = ctx.rng, scene.size
    angle = math.radians(rng.uniform(20, 65) * rng.choice((1, -1)))
    reach = math.hypot(w, h) / 2
    count = 4 + ctx.level + rng.randint(0, 2)
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
            _paint(scene, ctx, [_Shape("polygon", poly, _with_alpha(colour, alpha))], shadow=1.2)
        t += width
    u = min(w, h)
    cx, cy, r = w * rng.uniform(0.25, 0.75), h * rng.uniform(0.25, 0.6), u * rng.uniform(0.12, 0.2)
    sun = _mix(ctx.pick(), (255, 255, 255), 0.25)
    _paint(scene, ctx, [_circle(cx, cy, r, fill=_with_alpha(sun, 235))], shadow=1.5)
    ring = _circle(cx, cy, r * 1.35, outline=(255, 255, 255, 120), width=max(1.0, u * 0.005))
    _paint(scene, ctx, [ring], shadow=0)


def _tile_motif(tile: Image.Image, ctx: _Ctx, colour: RGB) -> None:
    rng, (s, _) = ctx.rng, tile.size
    draw = ImageDraw.Draw(tile, "RGBA")
    accent = _with_alpha(colour, 235)
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


def _layout_tiles(scene: Image.Image, ctx: _Ctx) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    cols = max(2, round((3 + ctx.level // 2 + rng.randint(0, 1)) * w / u))
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
            boxes.append(
                _Shape("rrect", (x, y, x + side, y + side), (255, 255, 255, 255), radius=radius)
            )
    _paint(scene, ctx, boxes, shadow=1.0, direction=(0.3, 1.0))
    shape_mask = Image.new("L", (side * 2, side * 2), 0)
    ImageDraw.Draw(shape_mask).rounded_rectangle(
        (0, 0, side * 2 - 1, side * 2 - 1), radius=radius * 2, fill=255
    )
    shape_mask = shape_mask.resize((side, side), _BOX)
    for box in boxes:
        colours = rng.sample(ctx.palette, 2)
        face = Image.new("RGB", (side, side), colours[0])
        _tile_motif(face, ctx, colours[1] if rng.random() < 0.85 else ctx.bg[0])
        scene.paste(face, (round(box.xy[0]), round(box.xy[1])), shape_mask)


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


def _layout_horizon(scene: Image.Image, ctx: _Ctx) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    if ctx.dark:
        _stars(scene, ctx, 25 + 25 * ctx.level, top=0.55)
    sx, sy, sr = w * rng.uniform(0.2, 0.8), h * rng.uniform(0.2, 0.4), u * rng.uniform(0.07, 0.12)
    sun = _mix(ctx.palette[0], (255, 255, 240), 0.45)
    _glow(scene, sx, sy, sr * 3, sun, 0.5)
    _paint(scene, ctx, [_circle(sx, sy, sr, fill=_with_alpha(sun, 250))], shadow=0)
    layers = 3 + ctx.level // 2 + rng.randint(0, 1)
    far, near = ctx.bg[2], _mix(ctx.palette[1], _INK_DARK, 0.7)
    points = 17 if ctx.level < 3 else 65
    for i in range(layers):
        t = i / max(1, layers - 1)
        base = h * (0.5 + 0.35 * t)
        tone = _mix(_mix(far, ctx.palette[(i + 2) % len(ctx.palette)], 0.45), near, t * 0.9)
        ridge = _ridge(rng, w, base, h * (0.18 - 0.08 * t), points)
        poly = (*ridge, w, h, 0, h)
        _paint(
            scene,
            ctx,
            [_Shape("polygon", tuple(poly), _with_alpha(tone, 255))],
            shadow=0.8,
            direction=(0.0, -1.0),
        )


def _layout_bokeh(scene: Image.Image, ctx: _Ctx) -> None:
    rng, (w, h) = ctx.rng, scene.size
    u = min(w, h)
    for layer, scale in ((0, 0.5), (1, 1.0)):  # far lights at half size, near ones sharper
        lw, lh = max(1, round(w * scale)), max(1, round(h * scale))
        lights = Image.new("RGB", (lw, lh), (0, 0, 0))
        draw = ImageDraw.Draw(lights, "RGBA")
        count = (8 + 4 * ctx.level) if layer == 0 else (10 + 6 * ctx.level)
        for _ in range(count):
            r = u * scale * (rng.uniform(0.05, 0.16) if layer == 0 else rng.uniform(0.015, 0.05))
            x, y = rng.uniform(0, lw), rng.uniform(0, lh)
            colour = _mix(ctx.pick(), (255, 255, 255), rng.uniform(0.0, 0.4))
            alpha = rng.randint(60, 130) if layer == 0 else rng.randint(110, 200)
            draw.ellipse(
                (x - r, y - r, x + r, y + r),
                fill=_with_alpha(colour, alpha),
                outline=_with_alpha(colour, min(255, alpha + 50)),
                width=max(1, round(r * 0.08)),
            )
        radius = u * scale * (0.02 if layer == 0 else 0.002 + 0.001 * (ctx.level % 3))
        lights = lights.filter(ImageFilter.GaussianBlur(max(0.8, radius)))
        if scale != 1.0:
            lights = lights.resize((w, h), _BILINEAR)
        scene.paste(ImageChops.screen(scene, lights))
    streak = _band_polygon(w, h, math.radians(rng.uniform(-60, -30)), -u * 0.05, u * 0.12)
    mask = _soft_mask((w, h), [_Shape("polygon", streak, (255, 255, 255, 255))], blur=u * 0.08)
    scene.paste(_mix(ctx.palette[0], (255, 255, 255), 0.6), (0, 0), _fade(mask, 0.12))


def _layout_waves(scene: Image.Image, ctx: _Ctx) -> None:
    rng, (w, h) = ctx.rng, scene.size
    count = 4 + ctx.level // 2 + rng.randint(0, 1)
    steps = 32 if ctx.level < 3 else 72
    _glow(scene, w * rng.uniform(0.2, 0.8), h * 0.2, min(w, h) * 0.25, ctx.palette[0], 0.35)
    for i in range(count):
        base = h * (0.32 + 0.6 * i / count)
        amp = h * rng.uniform(0.025, 0.07)
        freq, phase = rng.uniform(0.7, 2.2), rng.uniform(0, math.tau)
        freq2, phase2 = rng.uniform(2.5, 4.5), rng.uniform(0, math.tau)
        xy: list[float] = []
        for s in range(steps + 1):
            x = w * s / steps
            theta = x / w * math.tau
            y = (
                base
                + amp * math.sin(theta * freq + phase)
                + amp * 0.3 * math.sin(theta * freq2 + phase2)
            )
            xy += [x, y]
        xy += [w, h, 0, h]
        colour = _mix(ctx.palette[i % len(ctx.palette)], ctx.bg[0], 0.15 * (count - i) / count)
        _paint(
            scene,
            ctx,
            [_Shape("polygon", tuple(xy), _with_alpha(colour, 255))],
            shadow=1.0,
            direction=(0.0, -1.0),
        )


_LAYOUT_FUNCTIONS: dict[str, Callable[[Image.Image, _Ctx], None]] = {
    "orbits": _layout_orbits,
    "bands": _layout_bands,
    "tiles": _layout_tiles,
    "horizon": _layout_horizon,
    "bokeh": _layout_bokeh,
    "waves": _layout_waves,
}


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


def _grain(image: Image.Image, ctx: _Ctx) -> Image.Image:
    """Film grain (RGB in, RGB out), from a seeded noise tile; none at low levels."""
    amplitude = max(0, ctx.level - 1)
    if amplitude == 0:
        return image
    tile_size = 128
    noise = Image.frombytes("L", (tile_size, tile_size), ctx.rng.randbytes(tile_size**2))
    noise = noise.point([v * 2 * amplitude // 255 for v in range(256)])
    field_l = Image.new("L", image.size)
    for y in range(0, image.size[1], tile_size):
        for x in range(0, image.size[0], tile_size):
            field_l.paste(noise, (x, y))
    grain = Image.merge("RGB", (field_l, field_l, field_l))
    return ImageChops.add(image, grain, 1.0, -amplitude)


def _scene(size: tuple[int, int], ctx: _Ctx) -> Image.Image:
    """The composition without text: an RGB image of `size`."""
    work = _working_size(size, ctx.level)
    scene = _background(work, ctx)
    _LAYOUT_FUNCTIONS[ctx.layout](scene, ctx)
    if work[0] > size[0]:
        scene = scene.resize(size, _BOX)
    elif work != size:
        scene = scene.filter(_SOFTEN).resize(size, _BICUBIC)
    else:
        scene = scene.filter(_SOFTEN)
    return _grain(scene, ctx)


def _emblem_outline(kind: str, d: float, inset: float) -> _Shape:
    a, b = inset, d - inset
    if kind == "circle":
        return _Shape("ellipse", (a, a, b, b), (255, 255, 255, 255))
    if kind == "squircle":
        return _Shape("rrect", (a, a, b, b), (255, 255, 255, 255), radius=(b - a) * 0.24)
    r, c = (b - a) / 2, d / 2
    points: list[float] = []
    for i in range(6):
        angle = math.radians(60 * i - 90)
        points += [c + r * math.cos(angle), c + r * math.sin(angle)]
    return _Shape("polygon", tuple(points), (255, 255, 255, 255))


def _emblem(size: tuple[int, int], ctx: _Ctx) -> Image.Image:
    """Transparent canvas with the composition cut into a sticker-like emblem."""
    w, h = size
    d = max(8, round(min(w, h * 0.72) * 0.84))
    kind = ctx.rng.choice(("circle", "squircle", "hexagon"))
    ss = 3  # supersampling of the emblem's edge
    big = Image.new("L", (d * ss, d * ss), 0)
    draw = ImageDraw.Draw(big)
    _draw_shape(draw, _emblem_outline(kind, d, 0), scale=ss, mask=True)
    alpha = big.reduce(ss)
    rim_big = Image.new("L", (d * ss, d * ss), 0)
    _draw_shape(ImageDraw.Draw(rim_big), _emblem_outline(kind, d, d * 0.035), scale=ss, mask=True)
    inner = rim_big.reduce(ss)
    x0, y0 = (w - d) // 2, max(0, round(h * 0.41 - d / 2))
    art = _scene((d, d), ctx)
    rim_colour = _mix(ctx.palette[0], (255, 255, 255), 0.8)
    art.paste(rim_colour, (0, 0), ImageChops.subtract(alpha, inner))
    gloss = _soft_mask((d, d), [_circle(d * 0.5, d * 0.05, d * 0.55, fill=(255,) * 4)], d * 0.05)
    art.paste((255, 255, 255), (0, 0), _fade(ImageChops.multiply(gloss, inner), 0.14))
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    shadow = Image.new("L", size, 0)
    shadow.paste(
        _fade(alpha.filter(ImageFilter.BoxBlur(d * 0.015)), 0.4),
        (x0 + round(d * 0.015), y0 + round(d * 0.035)),
    )
    canvas.putalpha(shadow)
    art_rgba = art.convert("RGBA")
    art_rgba.putalpha(alpha)
    canvas.alpha_composite(art_rgba, (x0, y0))
    return canvas


# --------------------------------------------------------------------------- text


_CJK = (
    "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+|\s+")
_NO_LINE_START = set("，。、；：！？）】》」』,.;:!?)]}%…")
_ELLIPSIS = "…"


def _clean_prompt(prompt: str, limit: int = 600) -> str:
    head = " ".join(prompt[: limit * 2].split())
    return "".join(ch for ch in head if ch.isprintable())[:limit]


def wrap_text(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """Wrap `text` to `max_width` pixels: CJK per character, Latin per word (long words
    per character); at most `max_lines`, the last ending in an ellipsis when cut."""
    tokens = _TOKEN.findall(_clean_prompt(text))
    tokens.reverse()
    lines: list[str] = []
    current = ""
    while tokens and len(lines) < max_lines:
        token = tokens.pop()
        if token.isspace():
            current += " " if current else ""
            continue
        candidate = current + token
        if font.getlength(candidate) <= max_width or token in _NO_LINE_START and current:
            current = candidate
        elif not current.strip():
            if len(token) > 1:  # a single word wider than the line: split it
                tokens.extend(reversed(token))
            else:
                current = candidate
        else:
            lines.append(current.rstrip())
            current = ""
            tokens.append(token)
    cut = bool(tokens)
    if current.strip() and len(lines) < max_lines:
        lines.append(current.rstrip())
    elif current.strip():
        cut = True
    if cut and lines:
        lines[-1] = _ellipsize(lines[-1], font, max_width)
    return lines


def _ellipsize(line: str, font: Font, max_width: float) -> str:
    while line and font.getlength(line.rstrip() + _ELLIPSIS) > max_width:
        line = line[:-1]
    return line.rstrip() + _ELLIPSIS


def _rounded_mask(size: tuple[int, int], radius: float, ss: int = 3) -> Image.Image:
    big = Image.new("L", (size[0] * ss, size[1] * ss), 0)
    ImageDraw.Draw(big).rounded_rectangle(
        (0, 0, size[0] * ss - 1, size[1] * ss - 1), radius=radius * ss, fill=255
    )
    return big.reduce(ss)


def _text_layer(size: tuple[int, int], colour: RGB) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    layer = Image.new("RGBA", size, _with_alpha(colour, 0))
    return layer, ImageDraw.Draw(layer)


def _card(canvas: Image.Image, region: tuple[int, int, int, int], prompt: str, ctx: _Ctx) -> None:
    """The prompt on a frosted, rounded card near the bottom of `region` (in place)."""
    rx0, ry0, rx1, ry1 = region
    rw, rh = rx1 - rx0, ry1 - ry0
    s = math.sqrt(rw * rh)
    size = round(_clamp(s * 0.04, 13, 96))
    font = _font(size)
    ascent, descent = font.getmetrics()
    line_h = round((ascent + descent) * 1.12)
    pad = round(size * 0.9)
    max_w = rw * 0.86 - 2 * pad
    max_lines = int(_clamp((rh * 0.3 - 2 * pad) // line_h, 1, 4))
    if max_w < size * 3 or rh < line_h + 2 * pad:
        return
    lines = wrap_text(prompt, font, max_w, max_lines)
    if not lines:
        return
    text_w = max(font.getlength(line) for line in lines)
    cw, ch = round(text_w + 2 * pad), round(len(lines) * line_h + 2 * pad - line_h * 0.1)
    cx0 = rx0 + (rw - cw) // 2
    cy0 = ry1 - ch - round(min(rw, rh) * 0.06)
    box = (cx0, cy0, cx0 + cw, cy0 + ch)
    backdrop = canvas.crop(box)
    opaque = backdrop.getextrema()[3][0] == 255
    light = not opaque or _luma(_mean_colour(backdrop)) > 135
    radius = min(ch / 2, size * 0.9)
    mask = _rounded_mask((cw, ch), radius)
    _card_shadow(canvas, box, mask, size)
    if opaque:  # frosted glass: the blurred backdrop shows through
        small = canvas.crop(box).resize((max(1, cw // 4), max(1, ch // 4)), _BOX)
        frosted = small.filter(ImageFilter.GaussianBlur(max(1, size / 5)))
        canvas.paste(frosted.resize((cw, ch), _BILINEAR), box[:2], mask)
    tint = (255, 255, 255) if light else (14, 16, 26)
    canvas.alpha_composite(
        _masked_colour((cw, ch), tint, _fade(mask, (0.72 if light else 0.6) if opaque else 0.86)),
        box[:2],
    )
    edge = ImageChops.subtract(
        mask, _rounded_mask((cw - 2, ch - 2), radius - 1).crop((-1, -1, cw - 1, ch - 1))
    )
    canvas.alpha_composite(_masked_colour((cw, ch), (255, 255, 255), _fade(edge, 0.5)), box[:2])
    ink = (24, 26, 36) if light else (246, 246, 250)
    layer, draw = _text_layer((cw, ch), ink)
    for i, line in enumerate(lines):
        draw.text(
            (cw / 2, pad + i * line_h), line, font=font, fill=_with_alpha(ink, 255), anchor="ma"
        )
    accent = ctx.palette[0]
    bar_w, bar_h = max(4, round(size * 1.4)), max(2, round(size * 0.12))
    draw.rounded_rectangle(
        ((cw - bar_w) / 2, pad * 0.42, (cw + bar_w) / 2, pad * 0.42 + bar_h),
        radius=bar_h / 2,
        fill=_with_alpha(accent, 230),
    )
    canvas.alpha_composite(layer, box[:2])


def _mean_colour(image: Image.Image) -> RGB:
    mean = ImageStat.Stat(image.convert("RGB")).mean
    return (round(mean[0]), round(mean[1]), round(mean[2]))


def _masked_colour(size: tuple[int, int], colour: RGB, alpha: Image.Image) -> Image.Image:
    layer = Image.new("RGBA", size, _with_alpha(colour, 0))
    layer.putalpha(alpha)
    return layer


def _card_shadow(
    canvas: Image.Image, box: tuple[int, int, int, int], mask: Image.Image, size: int
) -> None:
    blur = max(2, size * 0.6)
    margin = round(blur * 3)
    w, h = mask.size
    holder = Image.new("L", (w + 2 * margin, h + 2 * margin), 0)
    holder.paste(mask, (margin, margin + round(size * 0.25)))
    small = holder.resize((max(1, holder.width // 4), max(1, holder.height // 4)), _BOX)
    soft = small.filter(ImageFilter.GaussianBlur(blur / 4)).resize(holder.size, _BILINEAR)
    shadow = _masked_colour(holder.size, (0, 0, 0), _fade(soft, 0.35))
    canvas.alpha_composite(shadow, (box[0] - margin, box[1] - margin))


def _caption_text(job: ImageJob, index: int, width: int, font: Font) -> str | None:
    size = f"{job.width}x{job.height}"
    detail = job.quality if job.effort is None else f"{job.quality} · effort {job.effort}"
    number = f" · {index + 1}/{job.n}" if job.n > 1 else ""
    for text in (
        f"imagegate · placeholder · seed {job.seed} · {size} · {detail}{number}",
        f"imagegate · placeholder · seed {job.seed} · {size} · {job.quality}",
        f"placeholder · seed {job.seed} · {size}",
        f"seed {job.seed}",
    ):
        if font.getlength(text) <= width:
            return text
    return None


def _caption(
    canvas: Image.Image, region: tuple[int, int, int, int], job: ImageJob, index: int
) -> None:
    rx0, ry0, rx1, ry1 = region
    s = math.sqrt((rx1 - rx0) * (ry1 - ry0))
    size = round(_clamp(s * 0.016, 10, 36))
    font = _font(size)
    margin, pad = round(max(6, s * 0.025)), round(size * 0.6)
    text = _caption_text(job, index, rx1 - rx0 - 2 * margin - 2 * pad, font)
    if text is None or ry1 - ry0 < size * 3:
        return
    ascent, descent = font.getmetrics()
    w, h = round(font.getlength(text)) + 2 * pad, ascent + descent + pad
    pill = _masked_colour((w, h), (12, 14, 22), _fade(_rounded_mask((w, h), h / 2), 0.55))
    ImageDraw.Draw(pill).text((pad, h / 2), text, font=font, fill=(236, 238, 244, 255), anchor="lm")
    canvas.alpha_composite(pill, (rx0 + margin, ry0 + margin))


def _reference_strip(
    canvas: Image.Image,
    region: tuple[int, int, int, int],
    references: Sequence[Image.Image],
    ctx: _Ctx,
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
        thumb = ImageOps.contain(reference.convert("RGBA"), (box, box), _BILINEAR)
        frame = Image.new(
            "RGBA", (thumb.width + 2 * border, thumb.height + 3 * border), (250, 250, 246, 255)
        )
        frame.alpha_composite(thumb, (border, border))
        frame = frame.rotate(ctx.rng.uniform(-7, 7), _BICUBIC, expand=True)
        shadow = _masked_colour(
            frame.size, (0, 0, 0), _fade(frame.getchannel("A").filter(ImageFilter.BoxBlur(3)), 0.4)
        )
        x -= frame.width
        if x < rx0 + (rx1 - rx0) // 2:
            break
        canvas.alpha_composite(shadow, (x + border // 2, y + border))
        canvas.alpha_composite(frame, (x, y))
        x -= round(box * 0.08)


def _overlays(
    canvas: Image.Image, region: tuple[int, int, int, int], job: ImageJob, index: int, ctx: _Ctx
) -> None:
    _reference_strip(canvas, region, _references(job), ctx)
    _card(canvas, region, job.prompt, ctx)
    _caption(canvas, region, job, index)


# --------------------------------------------------------------------------- entry points


def _composition(
    size: tuple[int, int],
    job: ImageJob,
    index: int,
    ctx: _Ctx,
    overlay_region: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    if job.background == "transparent":
        canvas = _emblem(size, ctx)
    else:
        canvas = _scene(size, ctx).convert("RGBA")
    _overlays(canvas, overlay_region or (0, 0, *size), job, index, ctx)
    return canvas


def _inner_region(
    editable: Image.Image, bbox: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
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
        base = base.resize((job.width, job.height), _LANCZOS)
    return base.convert("RGBA") if base.mode != "RGBA" else base


def _edit_mask(job: ImageJob) -> Image.Image | None:
    """Binary "L" mask, 255 where the edit may paint (the job mask is 0 there)."""
    if job.mask is None:
        return None
    mask = job.mask if job.mask.mode == "L" else job.mask.convert("L")
    if mask.size != (job.width, job.height):
        mask = mask.resize((job.width, job.height), _NEAREST)
    return mask.point([255] + [0] * 255)


def _masked_edit(
    base: Image.Image, editable: Image.Image, job: ImageJob, index: int, ctx: _Ctx
) -> Image.Image:
    bbox = editable.getbbox()
    if bbox is None:
        return base.copy()
    region_size = (bbox[2] - bbox[0], bbox[3] - bbox[1])
    art = _composition(region_size, job, index, ctx, _inner_region(editable, bbox))
    painted = base.copy()
    painted.paste(art, bbox[:2])
    return Image.composite(painted, base, editable)


def _restyled_edit(base: Image.Image, job: ImageJob, index: int, ctx: _Ctx) -> Image.Image:
    size = base.size
    rgb = base.convert("RGB")
    dark, light = _mix(ctx.palette[0], _INK_DARK, 0.75), _mix(ctx.palette[1], _PAPER, 0.7)
    tinted = ImageOps.colorize(rgb.convert("L"), dark, light, mid=ctx.palette[2])
    styled = ImageOps.posterize(Image.blend(rgb, tinted, 0.5), 3 + min(3, ctx.level // 2))
    mixed = Image.blend(styled, _scene(size, ctx), 0.35).convert("RGBA")
    if job.background == "transparent":
        mixed.putalpha(base.getchannel("A"))
    _overlays(mixed, (0, 0, *size), job, index, ctx)
    return mixed


def render(job: ImageJob, index: int) -> Image.Image:
    """Image `index` of `job`: an RGBA image of exactly (job.width, job.height)."""
    ctx = _context(job, index)
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
    reduced = final.resize(small, _BOX)
    resample = _NEAREST if progress < 0.34 else _BILINEAR
    preview = reduced.resize((w, h), resample)
    if resample is _NEAREST:
        preview = Image.blend(preview, reduced.resize((w, h), _BILINEAR), 0.4)
    return preview if preview.mode == final.mode else preview.convert(final.mode)
