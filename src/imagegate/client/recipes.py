"""The guide's eight use cases as functions: each returns a `Recipe` you run with a client.

    recipe = recipes.social_media("summer sale", ["instagram_post", "twitter_post"])
    images = recipe.run(client)            # {"instagram_post": ImageResult, ...}
    images = await recipe.arun(async_client)

A Recipe is plain data (its calls, prompts, sizes), so you can inspect it, price it with
`client.estimate_cost(**call.params, prompt=call.prompt)`, or feed `recipe.jobs()` to
`client.batch`. Every size below is what the server returns, exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from imagegate.client._inputs import ImageInput
from imagegate.client._jobs import Job
from imagegate.client._types import ImageResult
from imagegate.client.prompts import bullet_prompt

if TYPE_CHECKING:
    from imagegate.client._client import AsyncClient, Client

LOGO_STYLES: tuple[str, ...] = ("minimalist", "modern", "vintage", "playful", "professional")
PLATFORM_SIZES: Mapping[str, str] = MappingProxyType(
    {
        "instagram_post": "1080x1080",
        "instagram_story": "1080x1920",
        "facebook_post": "1200x630",
        "twitter_post": "1200x675",
        "linkedin_post": "1200x627",
    }
)
GAME_ASSET_TYPES: tuple[str, ...] = ("character", "environment", "item")


@dataclass(frozen=True, slots=True)
class RecipeCall:
    """One image request of a recipe: a generation, or an edit when it has `images`."""

    key: str
    prompt: str
    params: Mapping[str, Any] = field(default_factory=dict)
    images: tuple[ImageInput, ...] = ()

    @property
    def size(self) -> str:
        """The size this call promises."""
        return str(self.params["size"])


@dataclass(frozen=True, slots=True)
class Recipe:
    """A named set of image requests; run it with `run(client)` or `await arun(async_client)`."""

    name: str
    calls: tuple[RecipeCall, ...]

    def run(self, client: Client) -> dict[str, ImageResult]:
        """Run every call in order with a sync client; results by key."""
        results = {}
        for call in self.calls:
            if call.images:
                results[call.key] = client.edit(list(call.images), call.prompt, **call.params)
            else:
                results[call.key] = client.generate(call.prompt, **call.params)
        return results

    async def arun(self, client: AsyncClient) -> dict[str, ImageResult]:
        """Run every call concurrently with an async client; results by key."""

        async def one(call: RecipeCall) -> ImageResult:
            if call.images:
                return await client.edit(list(call.images), call.prompt, **call.params)
            return await client.generate(call.prompt, **call.params)

        done = await asyncio.gather(*(one(call) for call in self.calls))
        return {call.key: result for call, result in zip(self.calls, done, strict=True)}

    def jobs(self) -> list[Job]:
        """The calls as batch jobs (ids are the keys)."""
        return [Job(c.prompt, dict(c.params), c.images, id=c.key) for c in self.calls]


def clothing_try_on(
    garment: ImageInput,
    model_description: str,
    *,
    pose: str = "Natural standing pose, 3/4 view",
    background: str = "Clean white studio background",
    quality: str = "high",
) -> Recipe:
    """A fashion model wearing the garment in `garment` (an edit; portrait 1024x1536)."""
    prompt = bullet_prompt(
        "Generate a professional fashion model photo",
        {
            "Model": model_description,
            "Clothing": "Based on the provided image",
            "Pose": pose,
            "Background": background,
            "Lighting": "Professional fashion photography lighting",
            "Style": "E-commerce product photo",
        },
    )
    params = {"size": "1024x1536", "quality": quality, "effort": "high"}
    return Recipe("clothing-try-on", (RecipeCall("try_on", prompt, params, (garment,)),))


def logo_variations(
    brand_name: str,
    industry: str,
    style_preferences: str = "",
    *,
    styles: Sequence[str] = LOGO_STYLES,
    quality: str = "high",
) -> Recipe:
    """One logo per style (minimalist, modern, vintage, playful, professional), 1024x1024 png."""
    calls = []
    for style in styles:
        prompt = bullet_prompt(
            f"Design a logo for {brand_name}",
            [
                f"Industry: {industry}",
                f"Style: {style} {style_preferences}".rstrip(),
                "Format: Vector-style clean design",
                "Colors: Suitable for the industry",
                "Include company name in the design",
                "Professional and memorable",
            ],
        )
        params = {"size": "1024x1024", "quality": quality, "output_format": "png"}
        calls.append(RecipeCall(style, prompt, params))
    return Recipe("logo-variations", tuple(calls))


def social_media(theme: str, platforms: Sequence[str] | None = None, *, quality: str = "medium") -> Recipe:
    """One graphic per platform at its exact size (see PLATFORM_SIZES); all platforms by default."""
    chosen = list(platforms) if platforms else list(PLATFORM_SIZES)
    unknown = [p for p in chosen if p not in PLATFORM_SIZES]
    if unknown:
        raise ValueError(f"unknown platform(s) {', '.join(unknown)}; known: {', '.join(PLATFORM_SIZES)}")
    calls = []
    for platform in chosen:
        prompt = bullet_prompt(
            f"Create a {platform.replace('_', ' ')} graphic",
            [
                f"Theme: {theme}",
                f"Optimized for {platform}",
                "Eye-catching and engaging",
                "Include space for text overlay",
                "Brand-appropriate design",
            ],
        )
        calls.append(RecipeCall(platform, prompt, {"size": PLATFORM_SIZES[platform], "quality": quality}))
    return Recipe("social-media", tuple(calls))


def tutorial_diagram(steps: Sequence[str], subject: str, *, quality: str = "high") -> Recipe:
    """A numbered step-by-step diagram with arrows, 1200x675."""
    if not steps:
        raise ValueError("a tutorial diagram needs at least one step")
    numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, start=1))
    prompt = bullet_prompt(
        "Create an educational step-by-step diagram",
        [
            f"Subject: {subject}",
            f"Number of steps: {len(steps)}",
            "Style: Clean, simple line drawings",
            "Each step clearly numbered and labeled",
            "Arrows showing progression",
            "Educational and easy to understand",
        ],
        footer=f"Steps:\n{numbered}",
    )
    params = {"size": "1200x675", "quality": quality}
    return Recipe("tutorial-diagram", (RecipeCall("diagram", prompt, params),))


def ui_mockup(app_type: str, features: Sequence[str], style: str, *, quality: str = "high") -> Recipe:
    """A mobile app screen mockup at phone size, 1080x1920 png."""
    prompt = bullet_prompt(
        "Design a mobile app UI mockup",
        [
            f"App type: {app_type}",
            f"Key features: {', '.join(features)}",
            f"Design style: {style}",
            "Include navigation, buttons, and content areas",
            "Modern and user-friendly layout",
            "Professional appearance",
        ],
    )
    params = {"size": "1080x1920", "quality": quality, "output_format": "png"}
    return Recipe("ui-mockup", (RecipeCall("mockup", prompt, params),))


def floor_plan_render(floor_plan: ImageInput, style: str, lighting: str, *, quality: str = "high") -> Recipe:
    """A 3D interior visualisation of a 2D floor plan (an edit; landscape 1536x1024)."""
    prompt = bullet_prompt(
        "Transform this 2D floor plan into a 3D interior visualization",
        [
            f"Style: {style}",
            f"Lighting: {lighting}",
            "Furniture: Modern and appropriate for each room",
            "Perspective: Eye-level view",
            "Realistic materials and textures",
            "Professional architectural rendering",
        ],
    )
    params = {"size": "1536x1024", "quality": quality}
    return Recipe("floor-plan", (RecipeCall("render", prompt, params, (floor_plan,)),))


def game_asset(asset_type: str, art_style: str, theme: str, *, quality: str = "medium") -> Recipe:
    """A game character, environment or item on a transparent background, 1024x1024 png."""
    prompts = {
        "character": f"Game character design: {theme} theme, {art_style} style, full body, T-pose, "
        "suitable for 2D game",
        "environment": f"Game environment: {theme} setting, {art_style} style, tileable background, "
        "vibrant colors",
        "item": f"Game item/power-up: {theme} themed, {art_style} style, iconic design, clear silhouette",
    }
    if asset_type not in prompts:
        raise ValueError(f"asset_type must be one of {', '.join(GAME_ASSET_TYPES)}, got {asset_type!r}")
    params = {"size": "1024x1024", "quality": quality, "background": "transparent", "output_format": "png"}
    return Recipe("game-asset", (RecipeCall(asset_type, prompts[asset_type], params),))


def avatar(user_description: str, style: str, *, quality: str = "high") -> Recipe:
    """A personalised profile picture, 1024x1024 png."""
    prompt = bullet_prompt(
        "Create a personalized avatar",
        [
            f"Description: {user_description}",
            f"Art style: {style}",
            "Friendly and approachable expression",
            "Suitable for profile picture",
            "High quality and detailed",
        ],
    )
    params = {"size": "1024x1024", "quality": quality, "output_format": "png"}
    return Recipe("avatar", (RecipeCall("avatar", prompt, params),))


RECIPES: Mapping[str, Callable[..., Recipe]] = MappingProxyType(
    {
        "clothing-try-on": clothing_try_on,
        "logo-variations": logo_variations,
        "social-media": social_media,
        "tutorial-diagram": tutorial_diagram,
        "ui-mockup": ui_mockup,
        "floor-plan": floor_plan_render,
        "game-asset": game_asset,
        "avatar": avatar,
    }
)
"""Recipe name (as the CLI spells it) -> function."""
