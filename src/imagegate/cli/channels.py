"""`imagegate channels`: upstream channels on the server's database (the /admin API's code)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from imagegate.cli.common import error_console, output_console
from imagegate.cli.server import AsJson, _admin, _stores
from imagegate.pricing import usd_to_micros

if TYPE_CHECKING:
    from imagegate.channels import Channels

channels_app = typer.Typer(
    no_args_is_help=True, help="Upstream channels (providers: openai, azure, gemini, vertex, seedream, xai)."
)


def _channels() -> Channels:
    channels = _stores().channels
    if channels is None:
        error_console().print(
            "[red]error:[/] no channel secret key here: channel keys are sealed with the server's, so set "
            "IMAGEGATE_SECRET_KEY or IMAGEGATE_DATA_DIR as the server has it.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    return channels


def _model_map(pairs: str | None) -> dict[str, str] | None:
    if not pairs:
        return None
    try:
        return dict(pair.split("=", 1) for pair in pairs.split(","))
    except ValueError:
        raise typer.BadParameter("use client=upstream pairs, comma-separated", param_hint="--map") from None


def _options(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    try:
        return dict(pair.split("=", 1) for pair in pairs)
    except ValueError:
        raise typer.BadParameter("use name=value", param_hint="--option") from None


_PRICE_NAMES = {"text_in": "text_in_per_1m", "image_in": "image_in_per_1m", "image_out": "image_out_per_1m"}


def _price(text: str | None) -> dict[str, Any] | None:
    """--price: JSON in micro-dollars (the admin API's `prices`), or dollars as name=value pairs:
    `per_image=0.04` (any quality and size) or `text_in=5,image_in=10,image_out=40` (per 1M tokens)."""
    if not text:
        return None
    if text.lstrip().startswith("{"):
        try:
            parsed: dict[str, Any] = json.loads(text)
        except ValueError:
            raise typer.BadParameter("not valid JSON", param_hint="--price") from None
        return parsed
    try:
        pairs = {
            name.strip(): usd_to_micros(value) for name, value in (p.split("=", 1) for p in text.split(","))
        }
    except ValueError:
        raise typer.BadParameter(
            "use per_image=USD, or text_in=USD,image_in=USD,image_out=USD (per 1M tokens)",
            param_hint="--price",
        ) from None
    price: dict[str, Any] = {v: pairs.pop(k, 0) for k, v in _PRICE_NAMES.items()}
    if "per_image" in pairs:
        price["per_image"] = {"*": {"*": pairs.pop("per_image")}}
    if pairs:
        raise typer.BadParameter(f"unknown price {next(iter(pairs))!r}", param_hint="--price")
    return price


def _capabilities(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        parsed: dict[str, Any] = json.loads(text)
    except ValueError:
        raise typer.BadParameter(
            'JSON, e.g. \'{"max_n": 1, "output_formats": ["png"]}\'', param_hint="--capabilities"
        ) from None
    return parsed


Map = Annotated[str | None, typer.Option("--map", help="Model mapping: client=upstream,...")]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option", help="A provider setting, name=value (repeatable): Azure deployment=..., api_version=..."
    ),
]
PriceOpt = Annotated[
    str | None,
    typer.Option(
        "--price",
        help="What the provider charges you: per_image=0.04, or text_in=5,image_in=10,image_out=40 "
        "(USD per 1M tokens), or JSON.",
    ),
]
CapsOpt = Annotated[
    str | None, typer.Option("--capabilities", help="JSON overrides of the models' capabilities.")
]
Prio = Annotated[int | None, typer.Option(help="Higher is tried first (default 0).")]
Weight = Annotated[int | None, typer.Option(help="Share among equal priorities (default 1).")]
Timeout = Annotated[float | None, typer.Option(help="Seconds per upstream request (default 120).")]


@channels_app.command("add")
def channels_add(
    name: Annotated[str, typer.Option(help="A unique name.")],
    api_key: Annotated[str, typer.Option(help="The provider key (stored encrypted).")],
    models: Annotated[str, typer.Option(help="Comma-separated model names it serves.")],
    provider: Annotated[
        str, typer.Option(help="openai (any OpenAI-compatible API), azure, gemini, vertex, seedream or xai.")
    ] = "openai",
    base_url: Annotated[
        str | None,
        typer.Option(help="Default: the provider's public endpoint, e.g. https://api.openai.com/v1"),
    ] = None,
    priority: Prio = None,
    weight: Weight = None,
    timeout: Timeout = None,
    model_map: Map = None,
    option: Options = None,
    price: PriceOpt = None,
    capabilities: CapsOpt = None,
) -> None:
    """Add a channel; every running gateway picks it up within a few seconds."""
    view = _admin(
        lambda: _channels().add(
            name,
            base_url,
            api_key,
            models.split(","),
            provider=provider,
            priority=priority,
            weight=weight,
            timeout_s=timeout,
            model_map=_model_map(model_map),
            options=_options(option),
            prices=_price(price),
            capabilities=_capabilities(capabilities),
        )
    )
    output_console().print(
        f"added {view['provider']} channel {view['id']} '{view['name']}' for {', '.join(view['models'])} "
        f"at {view['base_url']}",
        highlight=False,
    )


@channels_app.command("list")
def channels_list(as_json: AsJson = False) -> None:
    """Channels by priority (keys shown by their last 4 characters only)."""
    rows = _channels().list()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "provider", "base url", "models", "priority", "weight", "key", "status")
    for c in rows:
        status = "enabled" if c["enabled"] else f"disabled ({c['disabled_reason'] or 'by operator'})"
        if c.get("error"):
            status = f"skipped: {c['error']}"
        table.add_row(
            str(c["id"]),
            c["name"],
            c["provider"],
            c["base_url"],
            ", ".join(c["models"]),
            str(c["priority"]),
            str(c["weight"]),
            c["api_key"],
            status,
        )
    output_console().print(table)


@channels_app.command("update")
def channels_update(
    ident: Annotated[str, typer.Argument(help="Channel id or name.")],
    base_url: Annotated[str | None, typer.Option(help="New base URL.")] = None,
    api_key: Annotated[str | None, typer.Option(help="New provider key.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model names.")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Turn it on or off.")] = None,
    priority: Prio = None,
    weight: Weight = None,
    timeout: Timeout = None,
    model_map: Map = None,
    option: Options = None,
    price: PriceOpt = None,
    capabilities: CapsOpt = None,
) -> None:
    """Change a channel; --enable also clears an automatic disable."""
    fields: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key,
        "models": models.split(",") if models else None,
        "enabled": enabled,
        "priority": priority,
        "weight": weight,
        "timeout_s": timeout,
        "options": _options(option),
        "prices": _price(price),
        "capabilities": _capabilities(capabilities),
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if model_map is not None:
        fields["model_map"] = _model_map(model_map)
    if enabled is False:
        fields["disabled_reason"] = "disabled by the operator"
    view = _admin(lambda: _channels().update(ident, **fields))
    output_console().print(json.dumps(view, indent=2), highlight=False)


@channels_app.command("remove")
def channels_remove(ident: Annotated[str, typer.Argument(help="Channel id or name.")]) -> None:
    """Remove a channel."""
    _admin(lambda: _channels().remove(ident))
    output_console().print(f"removed channel '{ident}'", highlight=False)
