"""Stage: the prompt policy behind `moderation` ('auto' default, 'low' relaxed).

Contract: `check(prompt, level, rules, request_id)` returns nothing or raises
ModerationBlocked in OpenAI's shape (400, image_generation_user_error, moderation_blocked),
naming the violated categories. Rules marked `applies_at_low` hold at both levels.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagegate.config import ModerationRule
from imagegate.errors import ModerationBlocked


def check(prompt: str, level: str, rules: Sequence[ModerationRule], request_id: str) -> None:
    text = prompt.casefold()
    hits = [
        rule.category
        for rule in rules
        if (level == "auto" or rule.applies_at_low)
        and any(term.casefold() in text for term in rule.terms)
    ]
    if not hits:
        return
    categories = sorted(set(hits))
    raise ModerationBlocked(
        "Your request was rejected by the safety system. If you believe this is an error, "
        "contact the operator of this gateway and include the request ID "
        f"{request_id}. safety_violations=[{', '.join(categories)}].",
        extra={"moderation_details": {"moderation_stage": "input", "categories": categories}},
    )
