"""The `imagegate` command: one Typer app over both sides.

`server.py` runs the server and manages its keys, credits and usage, `channels.py` its channels
(on the server's database, opened by `stores.py`); `client.py`, `batch.py` and `recipes.py` are a
client of any OpenAI-compatible images API, built on the SDK (`imagegate.client`), which never imports this
package, typer or rich.
"""

from __future__ import annotations

import typer

from imagegate.cli import client, recipes, server

app = typer.Typer(no_args_is_help=True, help="imagegate: a self-hosted image-generation gateway.")
client.register(app)
server.register(app)
app.add_typer(recipes.recipe_app(), name="recipe")

__all__ = ["app", "main"]


def main() -> None:
    """The console script `imagegate`."""
    app()
