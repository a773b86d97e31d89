"""The server-side commands: serve, keys, credits, usage and channels (the /admin API's code)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from imagegate.cli.common import error_console, output_console
from imagegate.cli.stores import Stores, open_stores

if TYPE_CHECKING:
    from imagegate.accounts import Accounts
    from imagegate.config import Settings

T = TypeVar("T")

keys_app = typer.Typer(no_args_is_help=True, help="Create, list, update and revoke API keys.")
credits_app = typer.Typer(no_args_is_help=True, help="Add credit to a key.")
LIMITS = ("rpm", "rpd", "ipm", "concurrency")


def _settings(**overrides: object) -> Settings:
    from imagegate.config import Settings

    return Settings.model_validate({k: v for k, v in overrides.items() if v is not None})


def _stores() -> Stores:
    """The server's stores; no database there is one red line saying where it looked, exit code 1."""
    from imagegate.storage.stores import NoDatabase

    settings = _settings()
    try:
        return open_stores(settings)
    except NoDatabase as exc:
        found_by = (
            "IMAGEGATE_DATABASE_URL"
            if settings.database_url
            else f"IMAGEGATE_DATA_DIR={settings.data_dir}"
            + ("" if settings.data_dir.is_absolute() else f", relative to {Path.cwd()}")
        )
        error_console().print(
            f"[red]error:[/] no imagegate database at {exc} ({found_by}). Only `imagegate serve` creates "
            "one: run this command where the server runs, or with the server's IMAGEGATE_DATA_DIR (or "
            "IMAGEGATE_DATABASE_URL).",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def _accounts() -> Accounts:
    return _stores().accounts


def _admin(call: Callable[[], T]) -> T:
    """Run an account operation; a GatewayError becomes one red line and exit code 1."""
    from imagegate.errors import GatewayError

    try:
        return call()
    except GatewayError as exc:
        error_console().print(f"[red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


Rpm = Annotated[int | None, typer.Option(help="Requests per minute (overrides the tier).")]
Rpd = Annotated[int | None, typer.Option(help="Requests per day (overrides the tier).")]
Ipm = Annotated[int | None, typer.Option(help="Images per minute (overrides the tier).")]
Conc = Annotated[int | None, typer.Option(help="Concurrent requests (overrides the tier).")]
Mult = Annotated[str | None, typer.Option(help="Price multiplier, e.g. 1.3 (30% margin) or 0.8.")]
Models = Annotated[str | None, typer.Option(help="Comma-separated models this key may use.")]
Expires = Annotated[float | None, typer.Option(help="Days until the key expires.")]


def _limits(
    rpm: int | None,
    rpd: int | None,
    ipm: int | None,
    concurrency: int | None,
    multiplier: str | None,
    models: str | None,
    expires_days: float | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "rpm": rpm,
        "rpd": rpd,
        "ipm": ipm,
        "concurrency": concurrency,
        "multiplier": multiplier,
        "allowed_models": models.split(",") if models else None,
        "expires_at": time.time() + expires_days * 86_400 if expires_days else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")],
    tier: Annotated[str, typer.Option(help="free, tier1, tier2 or internal.")] = "free",
    credit: Annotated[str | None, typer.Option(help="Starting balance in USD (default: trial).")] = None,
    rpm: Rpm = None,
    rpd: Rpd = None,
    ipm: Ipm = None,
    concurrency: Conc = None,
    multiplier: Mult = None,
    models: Models = None,
    expires_days: Expires = None,
) -> None:
    """Create a key; the secret is printed alone on the last line, once."""
    accounts = _accounts()
    fields = _limits(rpm, rpd, ipm, concurrency, multiplier, models, expires_days)
    view, secret = _admin(lambda: accounts.create_key(name, tier, credit, **fields))
    output_console().print(
        f"created key {view['id']} '{view['name']}' ({view['prefix']}…, "
        f"tier {view['tier']}, balance ${view['balance_usd']:.6f})",
        highlight=False,
    )
    print(secret)


AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@keys_app.command("list")
def keys_list(as_json: AsJson = False) -> None:
    """List keys (prefixes only: secrets are never stored)."""
    accounts = _accounts()
    keys = accounts.list_keys()
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    table = Table("id", "name", "prefix", "tier", "balance", "rpm/rpd/ipm/conc", "created", "status")
    for column in (table.columns[0], table.columns[2]):  # what a key is named by: never cut
        column.no_wrap = True
    for k in keys:
        lim = k["limits"]
        limits = "/".join("-" if lim[f] is None else str(lim[f]) for f in LIMITS)
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k["created_at"]))
        table.add_row(
            str(k["id"]),
            k["name"],
            k["prefix"] + "…",
            k["tier"],
            f"${k['balance_usd']:.4f}",
            limits,
            created,
            k["status"],
        )
    output_console().print(table)


@keys_app.command("update")
def keys_update(
    ident: Annotated[str, typer.Argument(help="Key id or prefix.")],
    name: Annotated[str | None, typer.Option(help="New label.")] = None,
    tier: Annotated[str | None, typer.Option(help="New tier.")] = None,
    rpm: Rpm = None,
    rpd: Rpd = None,
    ipm: Ipm = None,
    concurrency: Conc = None,
    multiplier: Mult = None,
    models: Models = None,
    expires_days: Expires = None,
) -> None:
    """Change a key's name, tier, limits, multiplier, models or expiry."""
    accounts = _accounts()
    fields = _limits(rpm, rpd, ipm, concurrency, multiplier, models, expires_days)
    fields.update({k: v for k, v in {"name": name, "tier": tier}.items() if v is not None})
    view = _admin(lambda: accounts.update_key(ident, **fields))
    output_console().print(json.dumps(view, indent=2), highlight=False)


@keys_app.command("revoke")
def keys_revoke(ident: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke a key: it answers 401 from then on."""
    accounts = _accounts()
    view = _admin(lambda: accounts.revoke_key(ident))
    output_console().print(f"revoked key {view['id']} '{view['name']}' ({view['prefix']}…)", highlight=False)


@credits_app.command("add")
def credits_add(
    ident: Annotated[str, typer.Argument(help="Key id or prefix.")],
    usd: Annotated[str, typer.Argument(help="Amount in USD, e.g. 10 or 2.50.")],
    note: Annotated[str | None, typer.Option(help="Kept in the ledger.")] = None,
) -> None:
    """Top up a key's balance (an append-only ledger entry)."""
    accounts = _accounts()
    view = _admin(lambda: accounts.add_credit(ident, usd, note))
    output_console().print(f"key {view['id']} balance ${view['balance_usd']:.6f}", highlight=False)


def usage(
    key: Annotated[str | None, typer.Option(help="Only this key (id or prefix).")] = None,
    days: Annotated[int | None, typer.Option(help="Only the last N days.")] = None,
    by: Annotated[
        str, typer.Option(help="key: per key and day; channel: per channel and day, with margin.")
    ] = "key",
    as_json: AsJson = False,
) -> None:
    """Totals per key and UTC day: requests, failures, images, tokens, cost; what the channels cost
    the operator, and failed upstream attempts it may have paid for anyway ("unsure"). With
    --by channel: per channel, what keys were charged, what the channel cost and the margin."""
    accounts = _accounts()
    if by not in ("key", "channel"):
        raise typer.BadParameter("key or channel", param_hint="--by")
    if by == "channel":
        rows = _admin(lambda: accounts.usage_by_channel(days, time.time()))
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table(
            "day", "channel", "requests", "failed", "images", "charged", "upstream cost", "margin", "unsure"
        )
        for r in rows:
            table.add_row(
                r["day"],
                r["channel"] or "(local)",
                str(r["requests"]),
                str(r["failed"]),
                str(r["images"]),
                f"${r['cost_usd']:.6f}",
                f"${r['upstream_cost_usd']:.6f}",
                f"${r['margin_usd']:.6f}",
                str(r["maybe_billed"]),
            )
        output_console().print(table)
        return
    rows = _admin(lambda: accounts.usage_totals(key, days, time.time()))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(
        "day",
        "key",
        "requests",
        "failed",
        "images",
        "text in",
        "image in",
        "image out",
        "cost",
        "upstream cost",
        "unsure",
    )
    for r in rows:
        table.add_row(
            r["day"],
            str(r["key_id"]),
            str(r["requests"]),
            str(r["failed"]),
            str(r["images"]),
            str(r["text_in"]),
            str(r["image_in"]),
            str(r["image_out"]),
            f"${r['cost_usd']:.6f}",
            f"${r['upstream_cost_usd']:.6f}",
            str(r["maybe_billed"]),
        )
    output_console().print(table)


def register(app: typer.Typer) -> None:
    """Add serve and usage, then the keys, credits and channels groups, to the `imagegate` app."""
    from imagegate.cli.serve import serve  # it uses this module's helpers

    app.command()(serve)
    app.command()(usage)
    app.add_typer(keys_app, name="keys")
    app.add_typer(credits_app, name="credits")
    from imagegate.cli.channels import channels_app  # it uses this module's helpers

    app.add_typer(channels_app, name="channels")
    from imagegate.cli.history import history  # likewise

    app.command()(history)
    from imagegate.cli.provenance import provenance_app  # likewise

    app.add_typer(provenance_app, name="provenance")
