"""The engine seam: the only thing the request path knows about how images are made.

An engine is a small object (httpx's transport seam is the model): a `name`, its `capabilities`
as data, `describe()` and `run(job)`. It knows nothing of keys, money or HTTP clients. Every
failure is `imagegate.errors.EngineFailed` (or its provider subclass `UpstreamError`), whose
`retryable` tells the router (flow/route.py) to try the next route, for any engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from imagegate.domain import EngineEvent, ImageJob

ALL_FORMATS = ("png", "jpeg", "webp")


@dataclass(frozen=True, slots=True)
class SizeRule:
    """Free-form sizes within limits (gpt-image-2: edges multiples of 16, long edge <= 3840,
    ratio <= 3:1, 655,360-8,294,400 pixels)."""

    multiple: int = 16
    max_edge: int = 3840
    max_ratio: float = 3.0
    min_pixels: int = 655_360
    max_pixels: int = 8_294_400

    def allows(self, width: int, height: int) -> bool:
        long, short = max(width, height), min(width, height)
        return (
            width % self.multiple == 0
            and height % self.multiple == 0
            and long <= self.max_edge
            and long <= self.max_ratio * short
            and self.min_pixels <= width * height <= self.max_pixels
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine (or a provider's model) can render, as data, so the gateway can adapt a
    request to it and say so (engines/adapt.py).

    `sizes`: the exact sizes it makes ("WxH"), or `size_rule`: the rule its free-form sizes
    follow; neither: any size within the gateway's own rules (images/sizes.py). `formats`: the
    output formats it writes; `alpha`: transparent backgrounds; `max_n`: images per call;
    `edits`, `masks` and `max_images`: reference images and inpainting masks; `streaming`: partial
    images; `qualities`: the quality levels it distinguishes (empty: it has no such parameter).
    """

    sizes: tuple[str, ...] | None = None
    size_rule: SizeRule | None = None
    formats: tuple[str, ...] = ALL_FORMATS
    alpha: bool = True
    max_n: int = 10
    edits: bool = True
    masks: bool = True
    max_images: int = 16
    streaming: bool = True
    qualities: tuple[str, ...] = ("low", "medium", "high")

    def public(self) -> dict[str, object]:
        """As /v1/models shows it."""
        sizes: object = list(self.sizes) if self.sizes is not None else None
        if self.size_rule is not None:
            rule = self.size_rule
            sizes = {
                "multiple_of": rule.multiple,
                "max_edge": rule.max_edge,
                "max_ratio": rule.max_ratio,
                "min_pixels": rule.min_pixels,
                "max_pixels": rule.max_pixels,
            }
        return {
            "sizes": sizes if sizes is not None else "any",
            "output_formats": list(self.formats),
            "transparent_background": self.alpha,
            "max_n": self.max_n,
            "edits": self.edits,
            "masks": self.masks,
            "max_input_images": self.max_images,
            "streaming": self.streaming,
            "qualities": list(self.qualities),
        }

    def with_overrides(self, overrides: Mapping[str, Any]) -> Capabilities:
        """These capabilities with an operator's per-channel overrides, named as public() names
        them. Raises ValueError naming the first value it cannot take."""
        fields: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in _CHECKS:
                raise ValueError(f"unknown capability {key!r}")
            if not _CHECKS[key](value):
                raise ValueError(f"invalid value for {key!r}: {value!r}")
            name = _FIELD_NAMES.get(key, key)
            if key == "sizes":
                if isinstance(value, dict):
                    fields["size_rule"] = SizeRule(
                        **{_RULE_NAMES.get(str(k), str(k)): v for k, v in value.items()}
                    )
                    fields["sizes"] = None
                else:
                    fields["sizes"] = None if value == "any" else tuple(value)
                    fields["size_rule"] = None
            elif isinstance(value, list):
                fields[name] = tuple(value)
            else:
                fields[name] = value
        return replace(self, **fields)


def _is_size(value: Any) -> bool:
    if not isinstance(value, str) or value.count("x") != 1:
        return False
    w, h = value.split("x")
    return w.isdigit() and h.isdigit() and 0 < int(w) <= 16384 and 0 < int(h) <= 16384


def _sizes_ok(value: Any) -> bool:
    if value == "any":
        return True
    if isinstance(value, list):
        return bool(value) and all(_is_size(v) for v in value)
    if isinstance(value, dict):
        names = {"multiple_of", "max_edge", "max_ratio", "min_pixels", "max_pixels"}
        return set(value) <= names and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value.values()
        )
    return False


def _count(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


_FIELD_NAMES = {
    "output_formats": "formats",
    "transparent_background": "alpha",
    "max_input_images": "max_images",
}
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "sizes": _sizes_ok,
    "output_formats": lambda v: isinstance(v, list) and bool(v) and set(v) <= set(ALL_FORMATS),
    "transparent_background": lambda v: isinstance(v, bool),
    "max_n": _count(1, 10),
    "edits": lambda v: isinstance(v, bool),
    "masks": lambda v: isinstance(v, bool),
    "max_input_images": _count(0, 16),
    "streaming": lambda v: isinstance(v, bool),
    "qualities": lambda v: isinstance(v, list) and set(v) <= {"low", "medium", "high"},
}
_RULE_NAMES = {"multiple_of": "multiple"}
CAPABILITY_KEYS = frozenset(Capabilities().public())


class Engine(Protocol):
    """Turns a validated ImageJob into images.

    It yields, for each of the job's `n` images, up to `job.partial_images` PartialImage events
    (only when `job.stream`) and then exactly one FinalImage (with the engine's own `usage` when
    it knows it). Failures raise `imagegate.errors.EngineFailed`.
    """

    name: str
    capabilities: Capabilities

    def describe(self) -> str:
        """One line for /v1/models and the start-up log, e.g. 'offline placeholder renderer'."""
        ...

    def run(self, job: ImageJob) -> AsyncIterator[EngineEvent]:
        """Produce the job's images (and partial images when streaming)."""
        ...
