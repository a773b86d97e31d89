"""Stage: the prompt policy behind `moderation` ('auto' default, 'low' relaxed).

Contract: `check(prompt, level, rules, request_id)` returns nothing or raises
ModerationBlocked in OpenAI's shape (400, image_generation_user_error, moderation_blocked),
naming the violated categories. Rules marked `applies_at_low` hold at both levels.

Prompt and terms are normalised alike (Unicode NFKC, so full-width letters are plain ones; case
folded; punctuation and runs of whitespace made one space), and a term matches on word
boundaries (with an optional plural "s"): "Taylor  Swift" and "ＴＡＹＬＯＲ-swift" match
"taylor swift", "pineapple logo" does not match "apple logo". Terms in scripts written without
spaces (Chinese) match anywhere.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

from imagegate.config import ModerationRule
from imagegate.engines.moderation import Moderator
from imagegate.errors import ModerationBlocked, ServiceUnavailable

_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalise(text: str) -> str:
    text = _PUNCTUATION.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


@functools.lru_cache(maxsize=1024)
def _pattern(term: str) -> re.Pattern[str]:
    words = normalise(term)
    if not words.isascii():  # Chinese and other scripts without spaces: anywhere
        return re.compile(re.escape(words))
    return re.compile(rf"(?<!\w){re.escape(words)}s?(?!\w)")


def check(prompt: str, level: str, rules: Sequence[ModerationRule], request_id: str) -> None:
    text = normalise(prompt)
    hits = [
        rule.category
        for rule in rules
        if (level == "auto" or rule.applies_at_low)
        and any(_pattern(term).search(text) for term in rule.terms)
    ]
    if hits:
        raise blocked(sorted(set(hits)), request_id)


async def check_remote(moderator: Moderator | None, prompt: str, request_id: str) -> None:
    """The configured moderation channel's verdict; no usable channel of that name: 503."""
    if moderator is None:
        raise ServiceUnavailable(
            "The moderation channel this gateway requires is not available (disabled, "
            "missing or its key cannot be unsealed)."
        )
    categories = await moderator.flagged(prompt)
    if categories:
        raise blocked(categories, request_id)


def blocked(categories: list[str], request_id: str) -> ModerationBlocked:
    return ModerationBlocked(
        "Your request was rejected by the safety system. If you believe this is an error, "
        "contact the operator of this gateway and include the request ID "
        f"{request_id}. safety_violations=[{', '.join(categories)}].",
        extra={"moderation_details": {"moderation_stage": "input", "categories": categories}},
    )
