"""The palette of a prompt: colour words, mood words, reference colours, hash schemes.

Colours are RGB tuples. The small colour arithmetic used throughout the placeholder
artwork (mix, luma, clamp, with_alpha) lives here too.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
from collections.abc import Sequence
from functools import cache
from typing import TypeVar

from PIL import Image
from PIL.Image import Resampling

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]
_T = TypeVar("_T")

INK_DARK: RGB = (10, 12, 22)
PAPER: RGB = (250, 248, 244)


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


_COLOUR_WORDS: dict[str, RGB] = {**_ENGLISH_COLOURS, **_CHINESE_COLOURS}


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
    return _word_pattern(list(_COLOUR_WORDS))


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
    for match in _colour_pattern().finditer(prompt):
        rgb = _lookup(_COLOUR_WORDS, match.group(0))
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
    thumb = image.resize(thumb_size, Resampling.BOX).convert("RGB")
    quantised = thumb.quantize(colors=max(count * 2, 4))
    flat = quantised.getpalette() or []
    counted = sorted(quantised.getcolors() or [], key=lambda item: (-item[0], item[1]))
    colours: list[RGB] = []
    for _, found in counted:
        idx = int(found)  # type: ignore[call-overload]  # a palette index (getcolors of a 'P' image)
        rgb = (flat[idx * 3], flat[idx * 3 + 1], flat[idx * 3 + 2])
        if all(_distance(rgb, other) > 40 for other in colours):
            colours.append(rgb)
        if len(colours) == count:
            break
    return colours


# --------------------------------------------------------------------------- palette


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
    return [_hls(hue + offset, _LIGHTNESS[i], saturation - 0.06 * (i % 2)) for i, offset in enumerate(scheme)]


def _extend_palette(colours: list[RGB], size: int) -> list[RGB]:
    variations = ((0.0, 0.16, 0.0), (0.07, -0.14, -0.1), (-0.08, 0.08, 0.05), (0.5, 0.0, -0.2))
    result = list(colours)
    step = 0
    while len(result) < size:
        h, lightness, s = colorsys.rgb_to_hls(*(v / 255 for v in colours[step % len(colours)]))
        dh, dl, ds = variations[(step // len(colours)) % len(variations)]
        if s < 0.08:  # achromatic: vary lightness only, with a hint of cool blue
            dh, ds, s, h = 0.0, 0.0, 0.12, 0.6
        result.append(_hls(h + dh, clamp(lightness + dl, 0.12, 0.9), clamp(s + ds, 0.0, 1.0)))
        step += 1
    return result


# --------------------------------------------------------------------------- colour arithmetic


def _hls(hue: float, lightness: float, saturation: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _distance(a: RGB, b: RGB) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def luma(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def with_alpha(c: RGB, alpha: int) -> RGBA:
    return (c[0], c[1], c[2], alpha)
