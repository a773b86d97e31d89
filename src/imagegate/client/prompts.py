"""The guide's prompt craft as data: style modifiers, quality boosters, the negative list,
quality presets, and the "Heading:\\n- Key: value" layout its use-case prompts share.

    >>> optimize_prompt("a cat programming", "minimalist")
    'a cat programming, minimalist design, clean lines, simple composition, high quality, detailed, \
professional, well-composed, avoid: blurry, distorted, low quality, artifacts'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

STYLE_MODIFIERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "realistic": ("photorealistic", "high detail", "professional photography"),
        "artistic": ("artistic style", "creative interpretation", "vibrant colors"),
        "minimalist": ("minimalist design", "clean lines", "simple composition"),
        "cartoon": ("cartoon style", "colorful", "playful", "exaggerated features"),
    }
)
"""Style name -> the modifiers the guide appends for it."""

QUALITY_BOOSTERS: tuple[str, ...] = ("high quality", "detailed", "professional", "well-composed")
"""Appended to every optimised prompt."""

NEGATIVE: tuple[str, ...] = ("blurry", "distorted", "low quality", "artifacts")
"""Common defects to steer away from, rendered as ", avoid: a, b, c"."""

QUALITY_PRESETS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "preview": MappingProxyType({"quality": "low", "effort": "low"}),
        "production": MappingProxyType({"quality": "medium", "effort": "medium"}),
        "premium": MappingProxyType({"quality": "high", "effort": "high"}),
    }
)
"""The guide's cost-optimised configurations: drafts low, publishing medium, print high."""

USE_CASE_QUALITY: Mapping[str, str] = MappingProxyType(
    {
        "social_media": "low",
        "product": "medium",
        "print": "high",
        "concept": "low",
    }
)
"""The guide's recommended quality per use case (its cost table)."""


def render_negative(avoid: Iterable[str] = NEGATIVE) -> str:
    """The negative list as the guide writes it: 'avoid: blurry, distorted, ...'."""
    return "avoid: " + ", ".join(avoid)


def optimize_prompt(
    base_prompt: str,
    style: str = "realistic",
    *,
    boosters: Sequence[str] = QUALITY_BOOSTERS,
    avoid: Sequence[str] = NEGATIVE,
) -> str:
    """The guide's optimize_prompt: base, the style's modifiers, boosters, then the negative list.

    Raises ValueError for a style not in STYLE_MODIFIERS (the guide silently added nothing).
    """
    try:
        modifiers = STYLE_MODIFIERS[style]
    except KeyError:
        known = ", ".join(STYLE_MODIFIERS)
        raise ValueError(f"unknown style {style!r}; known styles: {known}") from None
    parts = [base_prompt.strip(), *modifiers, *boosters]
    text = ", ".join(part for part in parts if part)
    return f"{text}, {render_negative(avoid)}" if avoid else text


def bullet_prompt(heading: str, fields: Mapping[str, object] | Iterable[str], *, footer: str = "") -> str:
    """'Heading:\\n- Key: value\\n- line ...' the way the guide's use-case prompts are written.

    `fields` is either a mapping (rendered "- Key: value") or plain lines (rendered "- line").
    """
    if isinstance(fields, Mapping):
        lines = [f"- {key}: {value}" for key, value in fields.items()]
    else:
        lines = [f"- {line}" for line in fields]
    text = heading.rstrip(":") + ":\n" + "\n".join(lines)
    return f"{text}\n{footer}" if footer else text
