"""Token accounting the way OpenAI bills gpt-image-1 (spec §6).

Text is counted with o200k_base; output images with the per-quality table; input
images with the 512-px tile formula. `Usage` renders the `usage` object of an
ImagesResponse or of a streamed `*.completed` event.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Output image tokens: the grid base per quality at 1024 px.
_OUTPUT_BASE = {"low": 16, "medium": 32, "high": 64}

_TILE = 512
_INPUT_FIT = 2048
_INPUT_BASE_TOKENS = 65
_INPUT_TILE_TOKENS = 129
_HIGH_FIDELITY_SQUARE = 4160
_HIGH_FIDELITY_OTHER = 6240

PARTIAL_IMAGE_TOKENS = 100  # output image tokens per streamed partial image


@functools.cache
def _encoding() -> Any:
    """The o200k_base encoding, loaded on first use.

    Importing bpe_openai builds every vocabulary it ships (~0.5 s) and, in 0.1.4, emits
    a DeprecationWarning (importlib.resources.open_binary); both are kept out of
    module import and out of `-W error` runs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding("o200k_base")


def count_text_tokens(text: str) -> int:
    """Number of o200k_base tokens in `text` (the prompt's input text tokens)."""
    if not text:
        return 0
    return len(_encoding().encode(text))


def output_image_tokens(quality: str, width: int, height: int) -> int:
    """Output image tokens for one width x height image at `quality` (low/medium/high).

    With b = 16, 32, 64 for low, medium, high:

        tokens = (ceil(b * width / 1024) + 1) * ceil(b * height / 1024)

    This reproduces OpenAI's published table exactly (low 272/408/400, medium
    1056/1584/1568, high 4160/6240/6208 for 1024x1024, 1024x1536, 1536x1024). OpenAI
    publishes no numbers for other sizes; applying the formula to custom sizes is
    our extrapolation.
    """
    try:
        base = _OUTPUT_BASE[quality]
    except KeyError:
        raise ValueError(f"unknown quality {quality!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    columns = -(-base * width // 1024)  # exact integer ceil
    rows = -(-base * height // 1024)
    return (columns + 1) * rows


def _scaled(width: int, height: int, factor: float) -> tuple[int, int]:
    return max(1, round(width * factor)), max(1, round(height * factor))


def input_image_tokens(width: int, height: int, *, high_fidelity: bool = False) -> int:
    """Input image tokens for one width x height input image (gpt-image-1 rules).

    1. Scale down (never up) to fit inside 2048x2048.
    2. Scale down so the shortest side is 512 px. Images whose short side is already
       512 px or less are not scaled up (our reading; OpenAI does not say), so every
       image costs at least one tile.
    3. tiles = ceil(w / 512) * ceil(h / 512); tokens = 65 + 129 * tiles.

    Each scaling rounds to whole pixels, as a real resize would. With `high_fidelity`
    (input_fidelity=high) add 4160 tokens for a square image, 6240 otherwise.
    Example: 1024x1024 -> 512x512 -> 1 tile -> 194 tokens.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    w, h = width, height
    if max(w, h) > _INPUT_FIT:
        w, h = _scaled(w, h, _INPUT_FIT / max(w, h))
    if min(w, h) > _TILE:
        w, h = _scaled(w, h, _TILE / min(w, h))
    tiles = math.ceil(w / _TILE) * math.ceil(h / _TILE)
    tokens = _INPUT_BASE_TOKENS + _INPUT_TILE_TOKENS * tiles
    if high_fidelity:
        tokens += _HIGH_FIDELITY_SQUARE if width == height else _HIGH_FIDELITY_OTHER
    return tokens


# The most tokens of one kind a request may count (a provider's report above it is not believed):
# far above any real image request, and inside the usage records' Integer columns (storage/bounds.py).
MAX_TOKENS = 100_000_000


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request."""

    text_in: int = 0
    image_in: int = 0
    image_out: int = 0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            text_in=self.text_in + other.text_in,
            image_in=self.image_in + other.image_in,
            image_out=self.image_out + other.image_out,
        )

    @property
    def input_tokens(self) -> int:
        return self.text_in + self.image_in

    @property
    def total(self) -> int:
        return self.text_in + self.image_in + self.image_out

    def to_openai_stream(self) -> dict[str, Any]:
        """The `usage` of a streamed `*.completed` event (no output_tokens_details)."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"text_tokens": self.text_in, "image_tokens": self.image_in},
            "output_tokens": self.image_out,
            "total_tokens": self.total,
        }

    def to_openai(self) -> dict[str, Any]:
        """The `usage` object of an ImagesResponse."""
        usage = self.to_openai_stream()
        usage["output_tokens_details"] = {"image_tokens": self.image_out, "text_tokens": 0}
        return usage


def job_usage(
    *,
    prompt: str,
    quality: str,
    width: int,
    height: int,
    n: int,
    partial_images: int = 0,
    input_sizes: Sequence[tuple[int, int]] = (),
    high_fidelity: bool = False,
) -> Usage:
    """What a job of `n` width x height images costs, in tokens.

    Text input: the prompt's o200k_base tokens. Image input: the sum over
    `input_sizes`, with the input_fidelity=high surcharge on the first image only.
    Image output: n * (table tokens + 100 per requested partial image).
    """
    image_in = sum(
        input_image_tokens(w, h, high_fidelity=high_fidelity and i == 0)
        for i, (w, h) in enumerate(input_sizes)
    )
    per_image = output_image_tokens(quality, width, height)
    per_image += PARTIAL_IMAGE_TOKENS * partial_images
    return Usage(text_in=count_text_tokens(prompt), image_in=image_in, image_out=n * per_image)
