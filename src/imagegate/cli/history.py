"""`imagegate history`: the image history on the server's database (what /admin/history reads)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from imagegate.cli.common import output_console
from imagegate.cli.server import AsJson, _admin, _stores


def history(
    key: Annotated[str | None, typer.Option(help="Only this key (id or prefix).")] = None,
    days: Annotated[int | None, typer.Option(help="Only the last N days.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries, newest first.")] = 50,
    export: Annotated[str | None, typer.Option(help="jsonl: one JSON object per line, for files.")] = None,
    as_json: AsJson = False,
) -> None:
    """What each request that delivered images asked for and made: prompt, parameters, model,
    engine, channel, key, time, cost, input and output hashes (newest first)."""
    if export not in (None, "jsonl"):
        raise typer.BadParameter("jsonl", param_hint="--export")
    stores = _stores()
    key_id = _admin(lambda: stores.accounts.find(key).id) if key else None  # NotFound: one red line
    since = time.time() - days * 86_400 if days is not None else None
    rows = stores.history.page(key_id, limit, None, since, None, model)
    for row in rows:
        row["cost_usd"] = row.pop("cost_micros") / 1_000_000
    if export == "jsonl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("id", "time (UTC)", "key", "model", "engine", "images", "cost", "prompt")
    for r in rows:
        table.add_row(
            str(r["id"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["created_at"])),
            str(r["key_id"]),
            r["model"] or "",
            r["engine"] or "",
            str(len(r["outputs"])),
            f"${r['cost_usd']:.6f}",
            (r["prompt"] or "(not kept)")[:60],
        )
    output_console().print(table)
