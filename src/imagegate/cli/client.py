"""Client-side commands (generate, edit, stats, cost) of the `imagegate` app.

See `common.py` for the shared options and the exit codes, `batch.py` for `imagegate batch`
and `recipes.py` for `imagegate recipe`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from imagegate.cli.batch import batch
from imagegate.cli.common import (
    ApiKeyOpt,
    BackgroundOpt,
    BaseUrlOpt,
    CacheOpt,
    FormatOpt,
    ImageHelp,
    JsonOpt,
    ModelOpt,
    NOpt,
    OutOpt,
    QualityOpt,
    RetriesOpt,
    SeedOpt,
    SizeOpt,
    format_from_path,
    home,
    image_source,
    image_sources,
    make_client,
    output_console,
    report_result,
    reporting,
)
from imagegate.client import Client, ImagegateError, ImageResult, Monitor, resolve_connection
from imagegate.client.monitor import LOG_NAME
from imagegate.client.pricing import DEFAULT_MODEL, micro_to_usd


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _write_images(
    call: Callable[[Client], ImageResult],
    output: Path,
    *,
    json_out: bool,
    api_key: str | None,
    base_url: str | None,
    cache: bool,
    max_retries: int,
) -> None:
    """What generate and edit share: a client, `call(client)`, its images written to -o, a report."""
    with reporting(json_out):
        client = make_client(api_key, base_url, cache=cache, max_retries=max_retries, json_out=json_out)
        with client:
            result = call(client)
            report_result(result, result.save(output), json_out)


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: OutOpt,
    size: SizeOpt = None,
    quality: QualityOpt = None,
    fmt: FormatOpt = None,
    background: BackgroundOpt = None,
    n: NOpt = None,
    seed: SeedOpt = None,
    model: ModelOpt = None,
    cache: CacheOpt = False,
    max_retries: RetriesOpt = 2,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Generate images from a prompt and write them to -o (out.png; n > 1: out-1.png, out-2.png ...)."""
    params = _params(
        size=size,
        quality=quality,
        output_format=format_from_path(output, fmt),
        background=background,
        n=n,
        seed=seed,
        model=model,
    )
    _write_images(
        lambda client: client.generate(prompt, **params),
        output,
        json_out=json_out,
        api_key=api_key,
        base_url=base_url,
        cache=cache,
        max_retries=max_retries,
    )


def edit(
    images: Annotated[
        list[str], typer.Argument(help=f"Reference images ({ImageHelp})", callback=image_sources)
    ],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to change.")],
    output: OutOpt,
    mask: Annotated[
        str | None,
        typer.Option(
            "--mask",
            callback=image_source,
            help="PNG whose transparent pixels mark the area to edit (a file or a URL).",
        ),
    ] = None,
    size: SizeOpt = None,
    quality: QualityOpt = None,
    fmt: FormatOpt = None,
    background: BackgroundOpt = None,
    n: NOpt = None,
    seed: SeedOpt = None,
    model: ModelOpt = None,
    input_fidelity: Annotated[str | None, typer.Option("--input-fidelity", help="low or high.")] = None,
    cache: CacheOpt = False,
    max_retries: RetriesOpt = 2,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Edit or combine reference images with a prompt (and optionally a mask)."""
    params = _params(
        size=size,
        quality=quality,
        output_format=format_from_path(output, fmt),
        background=background,
        n=n,
        seed=seed,
        model=model,
        input_fidelity=input_fidelity,
    )
    _write_images(
        lambda client: client.edit(list(images), prompt, mask=mask, **params),
        output,
        json_out=json_out,
        api_key=api_key,
        base_url=base_url,
        cache=cache,
        max_retries=max_retries,
    )


def stats(
    log: Annotated[
        Path | None, typer.Option("--log", help="Monitor log (default $IMAGEGATE_HOME/monitor.jsonl).")
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Also write the records to a .csv or .json file.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Totals of the calls this machine made: requests, success rate, latency, cost, cache savings."""
    path = log or home() / LOG_NAME
    monitor = Monitor.load(path)
    if export is not None:
        with reporting(json_out):
            (monitor.to_csv if export.suffix.lower() == ".csv" else monitor.to_json)(export)
    figures = monitor.stats().as_dict()
    if json_out:
        typer.echo(json.dumps({**figures, "log": str(path)}))
        return
    table = Table("metric", "value", title=f"imagegate calls ({path})")
    for name, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(name, shown)
    output_console().print(table)


def cost(
    quality: Annotated[str, typer.Option("--quality", help="low, medium, high or auto.")] = "medium",
    size: Annotated[str, typer.Option("--size", help="1024x1024, 1024x1536, 1536x1024 or WxH.")] = (
        "1024x1024"
    ),
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Number of images.")] = 1,
    model: Annotated[str, typer.Option("--model")] = DEFAULT_MODEL,
    partial_images: Annotated[int, typer.Option("--partial-images", min=0, max=3)] = 0,
    prompt: Annotated[str, typer.Option("--prompt", help="Count its text tokens too.")] = "",
    offline: Annotated[
        bool, typer.Option("--offline", help="Use the built-in price table, not the server's.")
    ] = False,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Estimate what a request costs (the server's price table when connected, else OpenAI's)."""
    with reporting(json_out):
        params: dict[str, Any] = {
            "quality": quality,
            "size": size,
            "n": n,
            "model": model,
            "partial_images": partial_images,
        }
        table_source = "default"
        try:
            connected = not offline and bool(resolve_connection(api_key, base_url))
        except ImagegateError:
            connected = False
        if connected:
            with make_client(api_key, base_url, max_retries=0, json_out=json_out) as client:
                dollars = client.estimate_cost(prompt, **params)
                table_source = client.pricing().source
        else:
            from imagegate.client.pricing import DEFAULT_PRICES, load_tokenizer

            micro = DEFAULT_PRICES.estimate(
                model=model,
                quality=quality,
                size=size,
                n=n,
                partial_images=partial_images,
                prompt=prompt,
                count_tokens=load_tokenizer(),
            )
            dollars = micro_to_usd(micro)
    if json_out:
        typer.echo(json.dumps({"cost_usd": dollars, **params, "table": table_source}))
    else:
        typer.echo(f"${dollars:.4f}  ({n} x {size} {quality}, {model}; {table_source} prices)")


def register(app: typer.Typer) -> None:
    """Add the client commands to the `imagegate` Typer app."""
    app.command("generate")(generate)
    app.command("edit")(edit)
    app.command("batch")(batch)
    app.command("stats")(stats)
    app.command("cost")(cost)
