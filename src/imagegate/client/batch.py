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

The two runners below are the only sync/async-specific code; `BatchRun` holds the rest.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Unpack

from imagegate.client._batchrun import BatchRun, Outcome, ProgressCallback
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

if TYPE_CHECKING:
    from imagegate.client._client import AsyncClient, Client

__all__ = [
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "Job",
    "JobResult",
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


def run_sync(client: Client, jobs: JobsArg, **options: Unpack[BatchOptions]) -> BatchResult:
    """Run a batch on worker threads (the engine of `Client.batch`)."""
    run = BatchRun(jobs, clock=client._core.env.clock, **options)

    def work(item: WorkItem) -> Outcome:
        ticket = run.ticket(item)
        try:
            for delay in run.waits(ticket):
                client._sleep(delay)
            return client._execute(item.to_call(client.default_model), observe=ticket.observe)
        except Exception as exc:  # reported in the job's slot
            return exc
        finally:
            ticket.close()

    # Jobs are handed to the pool one per finished job, after it is recorded: when recording or
    # on_progress raises (Ctrl-C), no further job starts; the running ones finish.
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix="imagegate-batch") as pool:
        todo = iter(run.todo())
        running = {pool.submit(work, item): item for item in itertools.islice(todo, run.concurrency)}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                run.finish(running.pop(future), future.result())
                if (item := next(todo, None)) is not None:
                    running[pool.submit(work, item)] = item
    return run.result()


async def run_async(client: AsyncClient, jobs: JobsArg, **options: Unpack[BatchOptions]) -> BatchResult:
    """Run a batch as asyncio tasks (the engine of `AsyncClient.batch`)."""
    run = BatchRun(jobs, clock=client._core.env.clock, **options)
    slots = asyncio.Semaphore(run.concurrency)

    async def work(item: WorkItem) -> tuple[WorkItem, Outcome]:
        async with slots:
            ticket = run.ticket(item)
            try:
                for delay in run.waits(ticket):
                    await client._sleep(delay)
                call = item.to_call(client.default_model)
                return item, await client._execute(call, observe=ticket.observe)
            except Exception as exc:  # reported in the job's slot
                return item, exc
            finally:
                ticket.close()

    tasks = [asyncio.ensure_future(work(item)) for item in run.todo()]
    try:
        for next_done in asyncio.as_completed(tasks):
            item, outcome = await next_done
            run.finish(item, outcome)
    finally:
        for task in tasks:
            task.cancel()
    return run.result()
