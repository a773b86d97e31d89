"""Text on the artwork: the CJK-capable font, wrapping, the prompt card and the caption."""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageStat
from PIL.Image import Resampling

from imagegate.domain import ImageJob
from imagegate.engines.placeholder.context import Context
from imagegate.engines.placeholder.drawing import fade, masked_colour, rounded_mask
from imagegate.engines.placeholder.palette import RGB, clamp, luma, with_alpha

Font = ImageFont.FreeTypeFont

_FONT_PACKAGE = "noto_cjk_sans_otc"
_FONT_FILE = "NotoSansCJK-Regular.ttc"


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
def load_font(size: int) -> Font:
    source = _font_source()
    if source is not None:
        return ImageFont.truetype(source[0], size, index=source[1])
    font = ImageFont.load_default(size)  # FreeType-backed: Pillow's wheels ship FreeType
    assert isinstance(font, ImageFont.FreeTypeFont)
    return font


# --------------------------------------------------------------------------- wrapping

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


# --------------------------------------------------------------------------- prompt card


def card(canvas: Image.Image, region: tuple[int, int, int, int], prompt: str, ctx: Context) -> None:
    """The prompt on a frosted, rounded card near the bottom of `region` (in place)."""
    rx0, ry0, rx1, ry1 = region
    rw, rh = rx1 - rx0, ry1 - ry0
    s = math.sqrt(rw * rh)
    size = round(clamp(s * 0.04, 13, 96))
    font = load_font(size)
    ascent, descent = font.getmetrics()
    line_h = round((ascent + descent) * 1.12)
    pad = round(size * 0.9)
    max_w = rw * 0.86 - 2 * pad
    max_lines = int(clamp((rh * 0.3 - 2 * pad) // line_h, 1, 4))
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
    extrema: Any = backdrop.getextrema()  # per band for an RGBA image
    opaque = extrema[3][0] == 255
    light = not opaque or luma(_mean_colour(backdrop)) > 135
    radius = min(ch / 2, size * 0.9)
    mask = rounded_mask((cw, ch), radius)
    _card_shadow(canvas, box, mask, size)
    if opaque:  # frosted glass: the blurred backdrop shows through
        small = canvas.crop(box).resize((max(1, cw // 4), max(1, ch // 4)), Resampling.BOX)
        frosted = small.filter(ImageFilter.GaussianBlur(max(1, size / 5)))
        canvas.paste(frosted.resize((cw, ch), Resampling.BILINEAR), box[:2], mask)
    tint = (255, 255, 255) if light else (14, 16, 26)
    canvas.alpha_composite(
        masked_colour((cw, ch), tint, fade(mask, (0.72 if light else 0.6) if opaque else 0.86)),
        box[:2],
    )
    edge = ImageChops.subtract(
        mask, rounded_mask((cw - 2, ch - 2), radius - 1).crop((-1, -1, cw - 1, ch - 1))
    )
    canvas.alpha_composite(masked_colour((cw, ch), (255, 255, 255), fade(edge, 0.5)), box[:2])
    ink = (24, 26, 36) if light else (246, 246, 250)
    layer, draw = _text_layer((cw, ch), ink)
    for i, line in enumerate(lines):
        draw.text((cw / 2, pad + i * line_h), line, font=font, fill=with_alpha(ink, 255), anchor="ma")
    accent = ctx.palette[0]
    bar_w, bar_h = max(4, round(size * 1.4)), max(2, round(size * 0.12))
    draw.rounded_rectangle(
        ((cw - bar_w) / 2, pad * 0.42, (cw + bar_w) / 2, pad * 0.42 + bar_h),
        radius=bar_h / 2,
        fill=with_alpha(accent, 230),
    )
    canvas.alpha_composite(layer, box[:2])


def _text_layer(size: tuple[int, int], colour: RGB) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    layer = Image.new("RGBA", size, with_alpha(colour, 0))
    return layer, ImageDraw.Draw(layer)


def _mean_colour(image: Image.Image) -> RGB:
    mean = ImageStat.Stat(image.convert("RGB")).mean
    return (round(mean[0]), round(mean[1]), round(mean[2]))


def _card_shadow(canvas: Image.Image, box: tuple[int, int, int, int], mask: Image.Image, size: int) -> None:
    blur = max(2, size * 0.6)
    margin = round(blur * 3)
    w, h = mask.size
    holder = Image.new("L", (w + 2 * margin, h + 2 * margin), 0)
    holder.paste(mask, (margin, margin + round(size * 0.25)))
    small = holder.resize((max(1, holder.width // 4), max(1, holder.height // 4)), Resampling.BOX)
    soft = small.filter(ImageFilter.GaussianBlur(blur / 4)).resize(holder.size, Resampling.BILINEAR)
    shadow = masked_colour(holder.size, (0, 0, 0), fade(soft, 0.35))
    canvas.alpha_composite(shadow, (box[0] - margin, box[1] - margin))


# --------------------------------------------------------------------------- caption


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


def caption(canvas: Image.Image, region: tuple[int, int, int, int], job: ImageJob, index: int) -> None:
    rx0, ry0, rx1, ry1 = region
    s = math.sqrt((rx1 - rx0) * (ry1 - ry0))
    size = round(clamp(s * 0.016, 10, 36))
    font = load_font(size)
    margin, pad = round(max(6, s * 0.025)), round(size * 0.6)
    text = _caption_text(job, index, rx1 - rx0 - 2 * margin - 2 * pad, font)
    if text is None or ry1 - ry0 < size * 3:
        return
    ascent, descent = font.getmetrics()
    w, h = round(font.getlength(text)) + 2 * pad, ascent + descent + pad
    pill = masked_colour((w, h), (12, 14, 22), fade(rounded_mask((w, h), h / 2), 0.55))
    ImageDraw.Draw(pill).text((pad, h / 2), text, font=font, fill=(236, 238, 244, 255), anchor="lm")
    canvas.alpha_composite(pill, (rx0 + margin, ry0 + margin))
