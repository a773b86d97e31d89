"""The guide's eight use cases, run against the real server: every image at the size promised."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.client import AsyncClient, Client, ImageResult
from imagegate.client import recipes as r
from imagegate.client.prompts import (
    NEGATIVE,
    QUALITY_BOOSTERS,
    QUALITY_PRESETS,
    STYLE_MODIFIERS,
    bullet_prompt,
    optimize_prompt,
)
from tests.conftest import LiveServer
from tests.imaging import png

GARMENT = png(200, 300, seed=5)
FLOOR_PLAN = png(320, 240, seed=6)

# Every recipe with cheap arguments and the sizes and formats it promises (key -> (size, format)).
CASES = {
    "clothing-try-on": (
        r.clothing_try_on(GARMENT, "young woman, 165cm", quality="low"),
        {"try_on": ("1024x1536", "png")},
    ),
    "logo-variations": (
        r.logo_variations("Acme", "coffee", "warm colours", quality="low"),
        {style: ("1024x1024", "png") for style in r.LOGO_STYLES},
    ),
    "social-media": (
        r.social_media("summer sale", quality="low"),
        {p: (size, "png") for p, size in r.PLATFORM_SIZES.items()},
    ),
    "tutorial-diagram": (
        r.tutorial_diagram(["boil water", "add tea", "wait"], "tea", quality="low"),
        {"diagram": ("1200x675", "png")},
    ),
    "ui-mockup": (
        r.ui_mockup("fitness", ["tracking", "social"], "clean", quality="low"),
        {"mockup": ("1080x1920", "png")},
    ),
    "floor-plan": (
        r.floor_plan_render(FLOOR_PLAN, "scandinavian", "warm evening", quality="low"),
        {"render": ("1536x1024", "png")},
    ),
    "game-asset": (r.game_asset("item", "pixel art", "space", quality="low"), {"item": ("1024x1024", "png")}),
    "avatar": (
        r.avatar("a smiling cyclist", "flat illustration", quality="low"),
        {"avatar": ("1024x1024", "png")},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_recipe_produces_the_sizes_it_promises(live: Client, name: str) -> None:
    recipe, promised = CASES[name]
    assert recipe.name == name and name in r.RECIPES
    assert {call.key: call.size for call in recipe.calls} == {k: v[0] for k, v in promised.items()}
    results = recipe.run(live)
    assert set(results) == set(promised)
    for key, (size, fmt) in promised.items():
        image = results[key].image
        assert image.to_pil().size == tuple(int(x) for x in size.split("x"))
        assert image.format == fmt and results[key].size == size


def test_game_assets_are_transparent(live: Client) -> None:
    result = r.game_asset("character", "cartoon", "forest", quality="low").run(live)["character"]
    assert result.background == "transparent"
    assert result.image.to_pil().getchannel("A").getextrema()[0] < 255


def test_recipes_run_with_the_async_client(server: LiveServer, api_key: str) -> None:
    recipe = r.social_media("launch", ["twitter_post", "linkedin_post"], quality="low")

    async def main() -> dict[str, ImageResult]:
        async with AsyncClient(api_key, server.api_base) as client:
            return await recipe.arun(client)

    results = asyncio.run(main())
    sizes = {k: v.size for k, v in results.items()}
    assert sizes == {"twitter_post": "1200x675", "linkedin_post": "1200x627"}


def test_recipe_data_and_validation() -> None:
    assert r.logo_variations("A", "b").calls[0].prompt.startswith("Design a logo for A:\n- Industry: b")
    diagram = r.tutorial_diagram(["one", "two"], "x").calls[0].prompt
    assert diagram.endswith("Steps:\n1. one\n2. two") and "- Number of steps: 2" in diagram
    assert [j.id for j in r.social_media("t", ["instagram_story"]).jobs()] == ["instagram_story"]
    with pytest.raises(ValueError, match="unknown platform"):
        r.social_media("t", ["myspace"])
    with pytest.raises(ValueError):
        r.game_asset("vehicle", "a", "b")
    with pytest.raises(ValueError):
        r.tutorial_diagram([], "x")


def test_prompt_helpers_render_like_the_guide() -> None:
    assert optimize_prompt("a cat", "cartoon") == (
        "a cat, cartoon style, colorful, playful, exaggerated features, high quality, detailed, "
        "professional, well-composed, avoid: blurry, distorted, low quality, artifacts"
    )
    assert set(STYLE_MODIFIERS) == {"realistic", "artistic", "minimalist", "cartoon"}
    assert QUALITY_BOOSTERS[0] == "high quality" and NEGATIVE[-1] == "artifacts"
    assert QUALITY_PRESETS["premium"]["quality"] == "high"
    assert optimize_prompt("x", "minimalist", boosters=(), avoid=()) == (
        "x, minimalist design, clean lines, simple composition"
    )
    assert bullet_prompt("H", {"A": 1}) == "H:\n- A: 1"
    with pytest.raises(ValueError, match="known styles"):
        optimize_prompt("x", "baroque")
