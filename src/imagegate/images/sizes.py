"""Output sizes: parsing the `size` parameter and resolving `size=auto`.

Besides OpenAI's three standard sizes the gateway accepts any custom `WIDTHxHEIGHT`
inside the limits below (gpt-image-2 style, without its multiple-of-16 rule), so
social-media sizes such as 1080x1920 or 1200x630 work as asked.
"""

from __future__ import annotations

import math
import re

from imagegate.errors import InvalidValue

STANDARD_SIZES: tuple[tuple[int, int], ...] = ((1024, 1024), (1536, 1024), (1024, 1536))
MIN_EDGE = 64
MAX_EDGE = 3840
MAX_RATIO = 3.0  # long edge : short edge
MAX_PIXELS = 3840 * 2160

_RATIO = int(MAX_RATIO)  # integer form, for exact comparisons
_MAX_DIGITS = 9  # longer numbers are over MAX_EDGE anyway; never int() a huge string

_SIZE_RE = re.compile(r"([0-9]+)\s*[xX×]\s*([0-9]+)")

_SYNTAX_HINT = (
    "Supported values are: 'auto', '1024x1024', '1536x1024', and '1024x1536', "
    f"or a custom 'WIDTHxHEIGHT' with edges from {MIN_EDGE} to {MAX_EDGE} px, "
    f"an aspect ratio up to {_RATIO}:1 and at most {MAX_PIXELS} pixels."
)


def parse_size(value: str) -> tuple[int, int] | None:
    """Parse `size`: "auto" -> None, "WxH" -> (w, h).

    The separator may be 'x', 'X' or '×'; whitespace around the value and the
    separator is ignored. Raises InvalidValue(param="size") for anything else,
    with a message naming the accepted syntax or the violated limit.
    """
    text = value.strip()
    if text.lower() == "auto":
        return None
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise InvalidValue(f"Invalid value: '{value}'. {_SYNTAX_HINT}", param="size")
    raw_w, raw_h = match.groups()
    if len(raw_w) > _MAX_DIGITS or len(raw_h) > _MAX_DIGITS:
        raise _edge_error(value)
    width, height = int(raw_w), int(raw_h)
    _check_limits(value, width, height)
    return width, height


def _edge_error(value: str) -> InvalidValue:
    return InvalidValue(
        f"Invalid value: '{value}'. Width and height must each be between {MIN_EDGE} and {MAX_EDGE} px.",
        param="size",
    )


def _check_limits(value: str, width: int, height: int) -> None:
    if not (MIN_EDGE <= width <= MAX_EDGE and MIN_EDGE <= height <= MAX_EDGE):
        raise _edge_error(value)
    long, short = max(width, height), min(width, height)
    if long > _RATIO * short:
        raise InvalidValue(
            f"Invalid value: '{value}'. The aspect ratio (long edge to short edge) "
            f"must be at most {_RATIO}:1; {width}x{height} is {long / short:.4g}:1.",
            param="size",
        )
    if width * height > MAX_PIXELS:
        raise InvalidValue(
            f"Invalid value: '{value}'. A size may have at most {MAX_PIXELS} pixels "
            f"(3840x2160); {width}x{height} has {width * height}.",
            param="size",
        )


def within_limits(width: int, height: int) -> bool:
    """True when (width, height) is an acceptable output size."""
    try:
        _check_limits("", width, height)
    except InvalidValue:
        return False
    return True


# --- size=auto for generations --------------------------------------------------------

# Cues in two tiers: explicit orientation words beat genre words ("a vertical banner" is
# portrait). Within a tier the earliest cue in the prompt wins.
_LATIN_STRONG_PORTRAIT = (
    r"vertical(?:ly)?",
    r"portrait[- ](?:orientation|mode|format|layout)",
    r"tall",
    r"9\s*:\s*16",
    r"2\s*:\s*3",
    r"3\s*:\s*4",
    r"4\s*:\s*5",
)
_LATIN_STRONG_LANDSCAPE = (
    r"horizontal(?:ly)?",
    r"landscape[- ](?:orientation|mode|format|layout)",
    r"wide[- ]?screen",
    r"16\s*:\s*9",
    r"3\s*:\s*2",
    r"4\s*:\s*3",
    r"21\s*:\s*9",
)
_LATIN_WEAK_PORTRAIT = (
    r"portraits?",
    r"posters?",
    r"(?:phone|mobile|iphone|lock[- ]?screen)\s+wallpapers?",
    r"stor(?:y|ies)",
    r"book\s+covers?",
)
_LATIN_WEAK_LANDSCAPE = (
    r"landscapes?",
    r"panoram(?:a|as|ic)",
    r"wide",
    r"banners?",
    r"desktop\s+wallpapers?",
)
_CJK_STRONG_PORTRAIT = ("竖版", "竖屏", "竖向", "竖幅", "纵向", "直幅")
_CJK_STRONG_LANDSCAPE = ("横版", "横屏", "横向", "横幅", "宽屏")
_CJK_WEAK_PORTRAIT = ("竖", "人像", "肖像", "海报", "手机壁纸")
_CJK_WEAK_LANDSCAPE = ("横", "风景", "全景", "风光")


def _cue_pattern(latin: tuple[str, ...], cjk: tuple[str, ...]) -> re.Pattern[str]:
    latin_part = r"\b(?:" + "|".join(latin) + r")\b"
    cjk_part = "|".join(re.escape(word) for word in cjk)
    return re.compile(f"{latin_part}|{cjk_part}", re.IGNORECASE)


_TIERS = (
    (
        _cue_pattern(_LATIN_STRONG_PORTRAIT, _CJK_STRONG_PORTRAIT),
        _cue_pattern(_LATIN_STRONG_LANDSCAPE, _CJK_STRONG_LANDSCAPE),
    ),
    (
        _cue_pattern(_LATIN_WEAK_PORTRAIT, _CJK_WEAK_PORTRAIT),
        _cue_pattern(_LATIN_WEAK_LANDSCAPE, _CJK_WEAK_LANDSCAPE),
    ),
)

SQUARE = (1024, 1024)
LANDSCAPE = (1536, 1024)
PORTRAIT = (1024, 1536)


def auto_generation_size(prompt: str) -> tuple[int, int]:
    """The size `auto` resolves to for a generation: guessed from the prompt.

    1024x1536 when the prompt asks for something portrait-shaped (portrait, vertical,
    poster, phone wallpaper, story, 9:16, 竖版, 人像...), 1536x1024 for landscape
    (landscape, panorama, wide, banner, 16:9, 横版, 风景...), else 1024x1024.
    Latin cues match whole words, case-insensitively. Explicit orientation cues
    (vertical, 16:9, 竖版...) win over genre cues (poster, banner, 风景...); within a
    tier, the cue that appears first wins.
    """
    for portrait_re, landscape_re in _TIERS:
        portrait = portrait_re.search(prompt)
        landscape = landscape_re.search(prompt)
        if portrait and landscape:
            return PORTRAIT if portrait.start() <= landscape.start() else LANDSCAPE
        if portrait:
            return PORTRAIT
        if landscape:
            return LANDSCAPE
    return SQUARE


# --- size=auto for edits -------------------------------------------------------------


def auto_edit_size(width: int, height: int) -> tuple[int, int]:
    """The size `auto` resolves to for an edit of a width x height input image: as OpenAI does,
    the model's size (1024x1024, 1536x1024, 1024x1536) nearest the input's aspect ratio (nearest
    on a log scale; a tie goes to the square). The mask is scaled with the image. An explicit
    custom size is kept exactly (parse_size), never this."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    ratio = math.log(width / height)
    return min((SQUARE, LANDSCAPE, PORTRAIT), key=lambda size: abs(ratio - math.log(size[0] / size[1])))
