"""The prompt policy: normalised text, terms matched on word boundaries (hardening)."""

from __future__ import annotations

import pytest

from imagegate.config import Settings
from imagegate.errors import ModerationBlocked
from imagegate.flow.moderate import check

RULES = Settings().moderation_rules


@pytest.mark.parametrize(
    "prompt",
    [
        "Taylor  Swift on stage",
        "TAYLOR swift",
        "ｔａｙｌｏｒ　ｓｗｉｆｔ portrait",
        "taylor-swift, photorealistic",
        "the Nike logos on a shoe",
        "Coca Cola logo",
        "成龙的照片",
        "the apple inc. logo",
    ],
)
def test_blocked_however_it_is_written(prompt: str) -> None:
    with pytest.raises(ModerationBlocked):
        check(prompt, "auto", RULES, "req_1")


@pytest.mark.parametrize(
    "prompt",
    [
        "a red apple logo for my fruit shop",
        "a pineapple logo",
        "swiftly flying birds",
        "Nikelogo-free sneaker",
        "a cartoon cat coding on a laptop",
    ],
)
def test_passes_when_the_words_are_not_the_term(prompt: str) -> None:
    check(prompt, "auto", RULES, "req_1")


def test_low_keeps_only_the_rules_marked_for_it() -> None:
    check("taylor swift", "low", RULES, "req_1")
    with pytest.raises(ModerationBlocked):
        check("underage nude", "low", RULES, "req_1")
