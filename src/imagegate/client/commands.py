"""Client-side CLI commands (generate, edit, batch, stats, cost, recipe), registered on the app.

See `_cli_common.py` for the shared options and the exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from imagegate.client._cli_common import (
    EXIT_FAILED_JOBS,
    ApiKeyOpt,
    BackgroundOpt,
    BaseUrlOpt,
    CacheOpt,
    FormatOpt,
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
    make_client,
    report_result,
    reporting,
)
from imagegate.client._client import Client, resolve_connection
from imagegate.client._errors import ImagegateError
from imagegate.client._jobs import BatchProgress, JobResult, load_jobs
from imagegate.client._recipe_commands import recipe_app
from imagegate.client._types import ImageResult
from imagegate.client.monitor import LOG_NAME, Monitor
from imagegate.client.pricing import DEFAULT_MODEL, micro_to_usd


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _write_images(
    call: Callable[[Client], ImageResult], output: Path, *, json_out: bool, api_key: str | None,
    base_url: str | None, cache: bool, max_retries: int,
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
    params = _params(size=size, quality=quality, output_format=format_from_path(output, fmt),
                     background=background, n=n, seed=seed, model=model)
    _write_images(lambda client: client.generate(prompt, **params), output, json_out=json_out,
                  api_key=api_key, base_url=base_url, cache=cache, max_retries=max_retries)


def edit(
    images: Annotated[list[Path], typer.Argument(help="Reference images (png, jpeg, webp).", exists=True,
                                                 dir_okay=False)],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to change.")],
    output: OutOpt,
    mask: Annotated[Path | None, typer.Option(
        "--mask", exists=True, dir_okay=False,
        help="PNG whose transparent pixels mark the area to edit.")] = None,
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
    params = _params(size=size, quality=quality, output_format=format_from_path(output, fmt),
                     background=background, n=n, seed=seed, model=model, input_fidelity=input_fidelity)
    _write_images(lambda client: client.edit(list(images), prompt, mask=mask, **params), output,
                  json_out=json_out, api_key=api_key, base_url=base_url, cache=cache, max_retries=max_retries)


def batch(
    jobs_file: Annotated[Path, typer.Argument(help="Jobs: JSONL (one object per line) or CSV with a header.",
                                              exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Directory for the images and results.jsonl.")],
    results: Annotated[Path | None, typer.Option("--results", help="Results file (default "
                                                 "OUT/results.jsonl); rerun with it to resume.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight.")] = 4,
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", min=0.001,
                                                     help="Requests per minute (client side).")] = None,
    priority: Annotated[bool, typer.Option("--priority", help="Hero/main-product prompts high quality, "
                                           "the rest low (unless a job sets quality).")] = False,
    max_jobs: Annotated[int | None, typer.Option("--max-jobs", min=0,
                                                 help="Run at most this many now.")] = None,
    cache: CacheOpt = False,
    max_retries: RetriesOpt = 2,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Run a file of jobs concurrently, with a progress bar; rerunning resumes where it stopped."""
    with reporting(json_out):
        jobs = load_jobs(jobs_file)
        client = make_client(api_key, base_url, cache=cache, max_retries=max_retries, json_out=json_out)
        results_file = results or out / "results.jsonl"
        options: dict[str, Any] = {"concurrency": concurrency, "rate_limit": rate_limit, "priority": priority,
                                   "results_file": results_file, "out_dir": out, "max_jobs": max_jobs}
        with client, _ProgressBar(len(jobs), enabled=not json_out) as on_progress:
            outcome = client.batch(jobs, on_progress=on_progress, **options)
    summary = {
        "total": len(outcome), "done": len(outcome.succeeded), "failed": len(outcome.failed),
        "pending": len(outcome.pending), "resumed": sum(1 for r in outcome if r.resumed),
        "cost_usd": outcome.cost_usd, "results_file": str(results_file),
        "failures": [{"id": r.id, "error": r.error, "code": r.error_code} for r in outcome.failed],
    }
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        for failure in outcome.failed:
            typer.echo(f"imagegate: job {failure.id} failed: {failure.error}", err=True)
        typer.echo(f"done {summary['done']}/{summary['total']} (resumed {summary['resumed']}), failed "
                   f"{summary['failed']}, pending {summary['pending']}, cost ${outcome.cost_usd:.4f}; "
                   f"results in {results_file}")
    if outcome.failed:
        raise typer.Exit(EXIT_FAILED_JOBS)


class _ProgressBar:
    """A rich progress bar (done/failed/cost/ETA) on stderr, as an on_progress callback."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"), TextColumn("${task.fields[cost]:.4f}"),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.task = self.bar.add_task("batch", total=total, failed=0, cost=0.0)

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            self.bar.stop()

    def __call__(self, progress: BatchProgress, _job: JobResult) -> None:
        self.bar.update(self.task, completed=progress.done + progress.failed, failed=progress.failed,
                        cost=progress.cost_usd)


def stats(
    log: Annotated[Path | None, typer.Option("--log", help="Monitor log (default "
                                             "$IMAGEGATE_HOME/monitor.jsonl).")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Also write the records to a .csv "
                                                "or .json file.")] = None,
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
    Console().print(table)


def cost(
    quality: Annotated[str, typer.Option("--quality", help="low, medium, high or auto.")] = "medium",
    size: Annotated[str, typer.Option("--size", help="1024x1024, 1024x1536, 1536x1024 or WxH.")] = (
        "1024x1024"),
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Number of images.")] = 1,
    model: Annotated[str, typer.Option("--model")] = DEFAULT_MODEL,
    partial_images: Annotated[int, typer.Option("--partial-images", min=0, max=3)] = 0,
    prompt: Annotated[str, typer.Option("--prompt", help="Count its text tokens too.")] = "",
    offline: Annotated[bool, typer.Option("--offline", help="Use the built-in price table, not the "
                                          "server's.")] = False,
    json_out: JsonOpt = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Estimate what a request costs (the server's price table when connected, else OpenAI's)."""
    with reporting(json_out):
        params = {"quality": quality, "size": size, "n": n, "model": model, "partial_images": partial_images}
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

            micro = DEFAULT_PRICES.estimate(model=model, quality=quality, size=size, n=n,
                                            partial_images=partial_images, prompt=prompt,
                                            count_tokens=load_tokenizer())
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
    app.add_typer(recipe_app(), name="recipe")

