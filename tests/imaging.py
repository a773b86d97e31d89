"""Small image factories for tests."""

from __future__ import annotations

import io
import random

from PIL import Image


def noise(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes(mode, (width, height), rng.randbytes(width * height * len(mode)))


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def png(width: int = 256, height: int = 256, seed: int = 0) -> bytes:
    return encode(noise(width, height, seed))


def mask_png(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """An RGBA mask: opaque everywhere except the transparent (edit) rectangle `box`."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), box)
    return encode(mask)


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def pixels(data: bytes) -> bytes:
    """An image's decoded pixels: what two signings of the same picture share (each C2PA manifest
    is its own: instance id, time, signature)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()
