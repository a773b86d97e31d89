"""The `imagegate` command: one Typer app for the server side and (later) the client side."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="imagegate: a self-hosted image-generation gateway.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
app.add_typer(keys_app, name="keys")
console = Console()
TIERS = ("free", "tier1", "tier2", "internal")


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    from imagegate.config import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _key_repo(settings):  # type: ignore[no-untyped-def]
    from imagegate.clock import SystemClock
    from imagegate.storage.db import make_engine, migrate
    from imagegate.storage.keys import KeyRepo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    was_new = migrate(engine)
    return KeyRepo(engine, SystemClock()), was_new


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [IMAGEGATE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [IMAGEGATE_PORT].")] = None,
) -> None:
    """Start the server (migrates the database; on a new one, creates and prints a key)."""
    import uvicorn

    from imagegate.http.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(host=host, port=port)
    repo, was_new = _key_repo(settings)
    if was_new and settings.create_initial_key and repo.count() == 0:
        _, secret = repo.create("default", tier="free")
        _print_welcome(secret, settings.host, settings.port)
    repo.engine.dispose()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def _print_welcome(secret: str, host: str, port: int) -> None:
    base = f"http://{host}:{port}/v1"
    console.print(
        f"""
[bold green]imagegate: a new database, so here is its first API key (shown once):[/]

  [bold]{secret}[/]

Try it:

  curl {base}/images/generations \\
    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
    -d '{{"model": "gpt-image-1", "prompt": "a red fox in a blue forest", "size": "1024x1024"}}'

  from openai import OpenAI
  import base64
  client = OpenAI(base_url="{base}", api_key="{secret}")
  result = client.images.generate(model="gpt-image-1", prompt="a red fox in a blue forest")
  open("fox.png", "wb").write(base64.b64decode(result.data[0].b64_json))
""",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")],
    tier: Annotated[str, typer.Option(help="free, tier1, tier2 or internal.")] = "free",
) -> None:
    """Create a key; the secret is printed alone on the last line, once."""
    if tier not in TIERS:
        raise typer.BadParameter(f"tier must be one of {', '.join(TIERS)}", param_hint="--tier")
    repo, _ = _key_repo(_settings())
    key, secret = repo.create(name, tier=tier)
    console.print(f"created key {key.id} '{key.name}' ({key.prefix}…, tier {key.tier})", highlight=False)
    print(secret)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only: secrets are never stored)."""
    repo, _ = _key_repo(_settings())
    table = Table("id", "name", "prefix", "tier", "created", "status")
    for key in repo.list():
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
        table.add_row(str(key.id), key.name, key.prefix + "…", key.tier, created,
                      "active" if key.active else "revoked")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(ident: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke a key: it answers 401 from then on."""
    repo, _ = _key_repo(_settings())
    key = repo.revoke(ident)
    if key is None:
        console.print(f"[red]no key '{ident}'[/]")
        raise typer.Exit(1)
    console.print(f"revoked key {key.id} '{key.name}' ({key.prefix}…)", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
