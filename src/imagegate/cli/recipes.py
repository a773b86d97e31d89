"""`imagegate recipe NAME ...`: the guide's eight use cases from the command line.

Each command builds the recipe (see `recipes.py`), runs it, and writes `<out>/<key>.<ext>`
(for example `out/instagram_post.png`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from imagegate.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    ImageHelp,
    JsonOpt,
    QualityOpt,
    image_source,
    make_client,
    reporting,
    result_json,
)
from imagegate.client.recipes import (
    Recipe,
    avatar,
    clothing_try_on,
    floor_plan_render,
    game_asset,
    logo_variations,
    social_media,
    tutorial_diagram,
    ui_mockup,
)

OutDirOpt = Annotated[Path, typer.Option("--out", help="Directory for the images.")]
ImageArg = Annotated[str, typer.Argument(callback=image_source, help=f"The reference image ({ImageHelp})")]


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _quality(quality: str | None, default: str) -> str:
    return quality or default


def _run(recipe: Recipe, out: Path, json_out: bool, api_key: str | None, base_url: str | None) -> None:
    with reporting(json_out):
        with make_client(api_key, base_url, json_out=json_out) as client:
            results = recipe.run(client)
        written = {key: result.save(out / key) for key, result in results.items()}
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "recipe": recipe.name,
                    "results": {key: result_json(result, written[key]) for key, result in results.items()},
                }
            )
        )
        return
    for key, result in results.items():
        for path in written[key]:
            typer.echo(f"wrote {path}  {result.size} {result.quality}  ${result.cost_usd:.4f}")


def social_media_cmd(
    theme: Annotated[str, typer.Option("--theme", help="The campaign theme.")],
    out: OutDirOpt,
    platforms: Annotated[
        list[str] | None,
        typer.Option(
            "--platforms",
            help="Comma-separated: instagram_post, instagram_story, facebook_post, "
            "twitter_post, linkedin_post (default all).",
        ),
    ] = None,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """One graphic per platform, each at the platform's exact size."""
    with reporting(json_out):
        recipe = social_media(theme, _split(platforms or []) or None, quality=_quality(quality, "medium"))
    _run(recipe, out, json_out, api_key, base_url)


def logo_variations_cmd(
    brand: Annotated[str, typer.Option("--brand", help="Brand name.")],
    industry: Annotated[str, typer.Option("--industry")],
    out: OutDirOpt,
    preferences: Annotated[str, typer.Option("--preferences", help="Extra style wishes.")] = "",
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Five logos: minimalist, modern, vintage, playful, professional."""
    _run(
        logo_variations(brand, industry, preferences, quality=_quality(quality, "high")),
        out,
        json_out,
        api_key,
        base_url,
    )


def clothing_try_on_cmd(
    garment: ImageArg,
    model_description: Annotated[str, typer.Option("--model-description", help="Who wears it.")],
    out: OutDirOpt,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """A model wearing the garment, 1024x1536."""
    _run(
        clothing_try_on(garment, model_description, quality=_quality(quality, "high")),
        out,
        json_out,
        api_key,
        base_url,
    )


def tutorial_diagram_cmd(
    subject: Annotated[str, typer.Option("--subject")],
    steps: Annotated[list[str], typer.Option("--step", help="One step (repeat the option).")],
    out: OutDirOpt,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """A numbered step-by-step diagram, 1200x675."""
    recipe = tutorial_diagram(steps, subject, quality=_quality(quality, "high"))
    _run(recipe, out, json_out, api_key, base_url)


def ui_mockup_cmd(
    app_type: Annotated[str, typer.Option("--app-type")],
    features: Annotated[list[str], typer.Option("--features", help="Comma-separated key features.")],
    style: Annotated[str, typer.Option("--style")],
    out: OutDirOpt,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """A mobile app screen, 1080x1920 png."""
    _run(
        ui_mockup(app_type, _split(features), style, quality=_quality(quality, "high")),
        out,
        json_out,
        api_key,
        base_url,
    )


def floor_plan_cmd(
    plan: ImageArg,
    style: Annotated[str, typer.Option("--style")],
    lighting: Annotated[str, typer.Option("--lighting")],
    out: OutDirOpt,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """A 3D interior render of a 2D floor plan, 1536x1024."""
    _run(
        floor_plan_render(plan, style, lighting, quality=_quality(quality, "high")),
        out,
        json_out,
        api_key,
        base_url,
    )


def game_asset_cmd(
    asset_type: Annotated[str, typer.Option("--type", help="character, environment or item.")],
    art_style: Annotated[str, typer.Option("--art-style")],
    theme: Annotated[str, typer.Option("--theme")],
    out: OutDirOpt,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """A game asset on a transparent background, 1024x1024 png."""
    with reporting(json_out):
        recipe = game_asset(asset_type, art_style, theme, quality=_quality(quality, "medium"))
    _run(recipe, out, json_out, api_key, base_url)


def avatar_cmd(
    description: Annotated[str, typer.Option("--description", help="Who the avatar shows.")],
    style: Annotated[str, typer.Option("--style")],
    out: OutDirOpt,
    quality: QualityOpt = None,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """A personalised profile picture, 1024x1024 png."""
    _run(avatar(description, style, quality=_quality(quality, "high")), out, json_out, api_key, base_url)


def recipe_app() -> typer.Typer:
    """The `imagegate recipe` sub-app with one command per recipe."""
    app = typer.Typer(no_args_is_help=True, help="The guide's eight use cases, ready to run.")
    app.command("social-media")(social_media_cmd)
    app.command("logo-variations")(logo_variations_cmd)
    app.command("clothing-try-on")(clothing_try_on_cmd)
    app.command("tutorial-diagram")(tutorial_diagram_cmd)
    app.command("ui-mockup")(ui_mockup_cmd)
    app.command("floor-plan")(floor_plan_cmd)
    app.command("game-asset")(game_asset_cmd)
    app.command("avatar")(avatar_cmd)
    return app
