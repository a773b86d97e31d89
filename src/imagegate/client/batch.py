"""Many jobs at once, within the key's limits, resumable: the guide's batch loop done properly.

`Client.batch(jobs, ...)` / `await AsyncClient.batch(jobs, ...)` run jobs (prompts, dicts or
`Job`s; a job with `images` is an edit) under a concurrency cap and a client-side token bucket
(`rate_limit` requests per minute) that adapts to 429s and `x-ratelimit-*` headers. With
`priority=True` the guide's rule applies: prompts mentioning "hero image" or "main product"
run first at quality high, the rest at low (a job's own `quality` wins). Results come back in
input order; a failed job is reported in its slot and the others go on.

With `results_file`, every finished job is appended as a JSON line; running again with the
same file skips the jobs already done (and retries the failed ones). Jobs of one results file
send deterministic Idempotency-Keys, so a job that was in flight when the run was killed is
not charged twice by a server that honours them. With `out_dir`, images are written as
`<out_dir>/<job id>.<ext>` (`<id>-1.<ext>`, ... for n > 1). `max_jobs` runs at most that many
jobs this time (the rest stay pending); `on_progress(progress, job_result)` is called after
every job, from the calling thread.

With `async_jobs=True` every job is submitted as an asynchronous job (`Client.submit`) before
any result is awaited, then each is polled (from `poll_interval` seconds, growing) until it
ends. The server jobs are named in a jobs file (`state_file`, by default
`<out_dir>/.imagegate-batch-jobs.json`), rewritten atomically after every submission: a run
that was stopped or killed, run again with the same inputs, polls the jobs it had submitted
instead of submitting them again (and a submission whose answer was lost is found again by its
Idempotency-Key, derived from the job's content). A job that failed on the server is submitted
afresh on the next run, as a failed request is retried.

The two pools below are the only sync/async-specific code: `BatchRun` holds the rest, and
names the stages of a run (the requests; or the submissions, then the waits), each a plan
(`_plan.py`) per job that either client's driver runs.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Unpack

from imagegate.client._batchfiles import JOBS_FILE_NAME, JobsFile
from imagegate.client._batchrun import BatchRun, ProgressCallback, Stage
from imagegate.client._jobs import (
    BatchOptions,
    BatchProgress,
    BatchResult,
    Job,
    JobResult,
    WorkItem,
    apply_priority,
    as_job,
    is_high_priority,
    load_jobs,
)
from imagegate.client._ratelimit import RateGate, parse_duration
from imagegate.client._transport import SyncDriver

if TYPE_CHECKING:
    from imagegate.client._client import AsyncClient, Client

__all__ = [
    "JOBS_FILE_NAME",
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "Job",
    "JobResult",
    "JobsFile",
    "ProgressCallback",
    "RateGate",
    "WorkItem",
    "apply_priority",
    "as_job",
    "is_high_priority",
    "load_jobs",
    "parse_duration",
    "run_async",
    "run_sync",
]


JobsArg = Iterable[Job | str | Mapping[str, Any]]


class _Stopped(Exception):
    """The runner stopped (its caller raised, e.g. Ctrl-C): a worker gives up at its next pause."""


def _pool_sync(client: Client, concurrency: int, stage: Stage) -> None:
    """Run the stage's plan for every item on `concurrency` threads; `done` on this thread."""
    items, plan_of, done = stage
    stop = threading.Event()

    def pause(seconds: float) -> None:  # a job's wait can be hours: none is begun once stopped
        if stop.is_set():
            raise _Stopped
        client._sleep(seconds)

    driver = SyncDriver(client._http, pause, client.base_url)

    def work(item: Any) -> Any:
        try:
            return driver.run(plan_of(item))
        except Exception as exc:  # reported in the job's slot
            return exc

    # Items are handed to the pool one per finished one, after it is recorded: when recording or
    # on_progress raises (Ctrl-C), no further item starts and the running ones stop at their
    # next pause.
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="imagegate-batch") as pool:
        todo = iter(items)
        running = {pool.submit(work, item): item for item in itertools.islice(todo, concurrency)}
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    done(running.pop(future), future.result())
                    if (item := next(todo, None)) is not None:
                        running[pool.submit(work, item)] = item
        finally:
            stop.set()


async def _pool_async(client: AsyncClient, concurrency: int, stage: Stage) -> None:
    """Run the stage's plan for every item as tasks, `concurrency` at a time."""
    items, plan_of, done = stage
    slots = asyncio.Semaphore(concurrency)

    async def work(item: Any) -> tuple[Any, Any]:
        async with slots:
            try:
                return item, await client._driver.run(plan_of(item))
            except Exception as exc:  # reported in the job's slot
                return item, exc

    tasks = [asyncio.ensure_future(work(item)) for item in items]
    try:
        for next_done in asyncio.as_completed(tasks):
            item, outcome = await next_done
            done(item, outcome)
    finally:
        for task in tasks:
            task.cancel()


def run_sync(client: Client, jobs: JobsArg, **options: Unpack[BatchOptions]) -> BatchResult:
    """Run a batch on worker threads (the engine of `Client.batch`)."""
    run = BatchRun(jobs, clock=client._core.env.clock, **options)
    for stage in run.stages(client._core, client.default_model):
        _pool_sync(client, run.concurrency, stage)
    return run.result()


async def run_async(client: AsyncClient, jobs: JobsArg, **options: Unpack[BatchOptions]) -> BatchResult:
    """Run a batch as asyncio tasks (the engine of `AsyncClient.batch`)."""
    run = BatchRun(jobs, clock=client._core.env.clock, **options)
    for stage in run.stages(client._core, client.default_model):
        await _pool_async(client, run.concurrency, stage)
    return run.result()
