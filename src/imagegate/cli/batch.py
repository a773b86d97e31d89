"""`imagegate batch FILE`: a file of jobs run concurrently, with a progress bar, resumable.

With `--async` every job is submitted as a server job first, then the results are collected;
the server's job ids are kept in OUT/.imagegate-batch-jobs.json, so a run that was stopped or
killed, run again, goes on polling them instead of submitting again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from imagegate.cli.common import (
    EXIT_FAILED_JOBS,
    ApiKeyOpt,
    BaseUrlOpt,
    CacheOpt,
    JsonOpt,
    RetriesOpt,
    error_console,
    make_client,
    reporting,
)
from imagegate.client import BatchProgress, JobResult
from imagegate.client.batch import JOBS_FILE_NAME, load_jobs


def batch(
    jobs_file: Annotated[
        Path,
        typer.Argument(
            help="Jobs: JSONL (one object per line) or CSV with a header.", exists=True, dir_okay=False
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for the images and results.jsonl.")],
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Results file (default OUT/results.jsonl); rerun with it to resume."),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight.")] = 4,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", min=0.001, help="Requests per minute (client side).")
    ] = None,
    priority: Annotated[
        bool,
        typer.Option(
            "--priority",
            help="Hero/main-product prompts high quality, the rest low (unless a job sets quality).",
        ),
    ] = False,
    max_jobs: Annotated[
        int | None, typer.Option("--max-jobs", min=0, help="Run at most this many now.")
    ] = None,
    async_jobs: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Submit every job as a server job (Prefer: respond-async), then collect the results; "
            "rerun to resume polling (jobs in OUT/.imagegate-batch-jobs.json).",
        ),
    ] = False,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="With --async: first wait between polls (s).")
    ] = 1.0,
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
        options: dict[str, Any] = {
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "priority": priority,
            "results_file": results_file,
            "out_dir": out,
            "max_jobs": max_jobs,
            "async_jobs": async_jobs,
            "poll_interval": poll_interval,
        }
        with client, _ProgressBar(len(jobs), enabled=not json_out) as on_progress:
            outcome = client.batch(jobs, on_progress=on_progress, **options)
    summary = {
        "total": len(outcome),
        "done": len(outcome.succeeded),
        "failed": len(outcome.failed),
        "pending": len(outcome.pending),
        "resumed": sum(1 for r in outcome if r.resumed),
        "cost_usd": outcome.cost_usd,
        "results_file": str(results_file),
        "jobs_file": str(out / JOBS_FILE_NAME) if async_jobs else None,
        "failures": [
            {"id": r.id, "error": r.error, "code": r.error_code, "job_id": r.server_job_id}
            for r in outcome.failed
        ],
    }
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        for failure in outcome.failed:
            typer.echo(f"imagegate: job {failure.id} failed: {failure.error}", err=True)
        typer.echo(
            f"done {summary['done']}/{summary['total']} (resumed {summary['resumed']}), failed "
            f"{summary['failed']}, pending {summary['pending']}, cost ${outcome.cost_usd:.4f}; "
            f"results in {results_file}"
        )
    if outcome.failed:
        raise typer.Exit(EXIT_FAILED_JOBS)


class _ProgressBar:
    """A rich progress bar (done/failed/cost/ETA) on stderr, as an on_progress callback."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=error_console(),
            transient=False,
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
        self.bar.update(
            self.task,
            completed=progress.done + progress.failed,
            failed=progress.failed,
            cost=progress.cost_usd,
        )
