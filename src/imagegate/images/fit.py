"""Making a rendered image the exact size asked for: centre-crop to the asked aspect ratio, then
resize (Lanczos). Used when a provider rendered the closest size it can (engines/adapt.py)."""

from __future__ import annotations

import io

from PIL import Image


def decode(data: bytes) -> Image.Image:
    """An encoded image from a provider, as RGB or RGBA pixels."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        mode = "RGBA" if opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info else "RGB"
        return opened.convert(mode)


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` centre-cropped to width:height and resized to exactly width x height."""
    if image.size == (width, height):
        return image
    src_w, src_h = image.size
    # The largest centred box of the asked aspect ratio (integer math: no drift by a pixel).
    if src_w * height > src_h * width:  # too wide: trim the sides
        box_w, box_h = max(1, round(src_h * width / height)), src_h
    else:  # too tall: trim top and bottom
        box_w, box_h = src_w, max(1, round(src_w * height / width))
    left, top = (src_w - box_w) // 2, (src_h - box_h) // 2
    return image.resize((width, height), Image.Resampling.LANCZOS, box=(left, top, left + box_w, top + box_h))
