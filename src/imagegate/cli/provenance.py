"""`imagegate provenance verify FILE`: what a C2PA reader sees in an image."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from imagegate.cli.common import error_console, output_console
from imagegate.cli.server import AsJson

provenance_app = typer.Typer(no_args_is_help=True, help="The C2PA manifests imagegate signs into its images.")

MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


@provenance_app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="A PNG, JPEG or WebP image.", exists=True, dir_okay=False)],
    trust: Annotated[
        Path | None,
        typer.Option(
            help="PEM trust anchor(s) to check the signer against. Default: this server's CA, "
            "<IMAGEGATE_DATA_DIR>/provenance/ca.pem, when there is one."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Print the image's manifest as a reader sees it: who signed it and whether they are trusted,
    what made it (action, digital source type, model, engine) and its ingredients. Exit code 1
    when it has no manifest or the manifest does not validate."""
    from imagegate.config import Settings
    from imagegate.provenance import inspect

    data = file.read_bytes()
    media_type = MEDIA_TYPES.get(file.suffix.lower()) or _sniff(data)
    if media_type is None:
        raise typer.BadParameter("not a PNG, JPEG or WebP file", param_hint="FILE")
    anchor = trust or Settings().data_dir / "provenance" / "ca.pem"
    trust_pem = anchor.read_bytes() if anchor.is_file() else None
    if trust is not None and trust_pem is None:
        raise typer.BadParameter(f"{trust} is not a file", param_hint="--trust")
    report = inspect(data, media_type, trust_pem)
    if as_json:
        print(json.dumps({**asdict(report), "trust_anchor": str(anchor) if trust_pem else None}, indent=2))
    elif not report.found:
        error_console().print(f"[red]no C2PA manifest[/] in {file}", highlight=False)
    else:
        out = output_console()
        colour = {"Trusted": "green", "Valid": "yellow"}.get(report.state or "", "red")
        out.print(f"[{colour}]{report.state}[/]  signed by {report.signer}", highlight=False)
        out.print(f"  trust anchor: {anchor if trust_pem else 'none given: the signer is not checked'}")
        out.print(f"  claim generator: {report.claim_generator}", highlight=False)
        for action in report.actions:
            agent = (action.get("softwareAgent") or {}).get("name")
            source = (action.get("digitalSourceType") or "").rsplit("/", 1)[-1]
            out.print(
                f"  action: {action['action']}"
                + (f", {source}" if source else "")
                + (f", by {agent}" if agent else "")
            )
        if report.generation:
            out.print("  made by: " + ", ".join(f"{k} {v}" for k, v in sorted(report.generation.items())))
        for ingredient in report.ingredients:
            signed = "with its own manifest" if ingredient["signed"] else "no manifest"
            what = f"{ingredient['relationship']}, {ingredient['format']}, {signed}"
            out.print(f"  ingredient: {ingredient['title']} ({what})")
        for problem in report.problems:
            out.print(f"  [red]problem:[/] {problem}", highlight=False)
    if not report.valid:
        raise typer.Exit(1)


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
