"""The bookkeeping of one batch run, shared by the sync and async runners in `batch.py`:
which jobs to run and in what order, the results file, saving images, progress, and the plans
(`_plan.py`) each job runs: one request, or (`async_jobs`) a submission and then a wait.

An asynchronous batch keeps a jobs file (`JobsFile`, by default
`<out_dir>/.imagegate-batch-jobs.json`) naming the server's job for each batch job, rewritten
atomically after every submission (at most once a second once it is large), so a second run
with the same inputs polls those jobs instead of submitting again. Submissions carry an
Idempotency-Key derived from the batch id, the job's id and content and the attempt number, so
a submission whose answer was lost (the run killed before it wrote the file) finds the same
job. A job the server failed or cancelled, or no longer knows, is submitted afresh on the next
run, under the next attempt's key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.client import _imagejobs as jobs
from imagegate.client._batchfiles import JOBS_FILE_NAME, JobsFile, ResultsFile
from imagegate.client._core import Core, error_code
from imagegate.client._errors import APIError, NotFoundError
from imagegate.client._jobs import (
    BatchProgress,
    BatchResult,
    Job,
    JobResult,
    WorkItem,
    apply_priority,
    as_job,
    content_digest,
    is_high_priority,
    job_id,
)
from imagegate.client._plan import Plan, Sleep
from imagegate.client._ratelimit import RateGate, Ticket
from imagegate.client._types import ImageResult
from imagegate.client.monitor import truncate_prompt

Outcome = ImageResult | BaseException
ProgressCallback = Callable[[BatchProgress, JobResult], Any]
# A stage of a run: its items, the plan each runs, and what is done (on the runner's thread)
# with each outcome (the plan's value, or the exception it raised).
Stage = tuple[Iterable[Any], Callable[[Any], Plan[Any]], Callable[[Any, Any], object]]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Submitted:
    """A batch job the server has as an asynchronous job (submitted now or by an earlier run)."""

    item: WorkItem
    job: jobs.Tracked
    attempt: int


class BatchRun:
    """State of one batch run; every method is called from the runner's own thread."""

    def __init__(
        self,
        jobs: Iterable[Job | str | Mapping[str, Any]],
        *,
        clock: Callable[[], float],
        concurrency: int = 4,
        rate_limit: float | None = None,
        priority: bool = False,
        results_file: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        on_progress: ProgressCallback | None = None,
        max_jobs: int | None = None,
        async_jobs: bool = False,
        state_file: str | os.PathLike[str] | None = None,
        poll_interval: float = jobs.DEFAULT_POLL_INTERVAL,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.clock = clock
        self.priority = priority
        self.out_dir = Path(out_dir).expanduser() if out_dir is not None else None
        self.on_progress = on_progress
        self.max_jobs = max_jobs
        self.gate = RateGate(rate_limit, burst=concurrency, clock=clock)
        job_list = [as_job(job) for job in jobs]
        ids = [job_id(job, i) for i, job in enumerate(job_list)]
        if len(set(ids)) != len(ids):
            raise ValueError("job ids must be unique within a batch")
        self.results = [JobResult(i, ids[i], job) for i, job in enumerate(job_list)]
        self.file = ResultsFile(results_file) if results_file is not None else None
        self.batch_id: str | None = None
        if self.file is not None:
            self.batch_id, previous = self.file.load()
            self._resume(previous)
            if self.batch_id is None:
                self.batch_id = uuid.uuid4().hex
                self.file.append({"type": "batch", "batch_id": self.batch_id, "created": time.time()})
        self.async_jobs = async_jobs
        self.poll_interval = poll_interval
        if state_file is None and self.out_dir is not None:
            state_file = self.out_dir / JOBS_FILE_NAME
        self.jobs_file = JobsFile(state_file if async_jobs else None)
        self.jobs_batch_id, self._previous = self.jobs_file.load()
        self._submitted = dict(self._previous)
        if self.jobs_batch_id is None:  # the keys of submissions derive from it: saved before any
            self.jobs_batch_id = self.batch_id or uuid.uuid4().hex
            self.jobs_file.save(self.jobs_batch_id, self._submitted)
            self.jobs_file.flush()
        self.started = clock()
        self.scheduled = 0
        self.finished = 0

    def _resume(self, previous: Mapping[str, Mapping[str, Any]]) -> None:
        for i, slot in enumerate(self.results):
            record = previous.get(slot.id)
            if record and record.get("ok"):
                self.results[i] = JobResult(
                    slot.index,
                    slot.id,
                    slot.job,
                    "done",
                    files=tuple(record.get("files") or ()),
                    cost_micro_usd=int(record.get("cost_micro_usd") or 0),
                    resumed=True,
                )

    def todo(self) -> list[WorkItem]:
        """The jobs to run now: not done yet, high priority first, at most `max_jobs`."""
        items = []
        for slot in self.results:
            if slot.state == "done":
                continue
            job = apply_priority(slot.job) if self.priority else slot.job
            items.append(WorkItem(slot.index, slot.id, job, self._key(slot.id)))
        if self.priority:
            items.sort(key=lambda item: not is_high_priority(item.job.prompt))
        if self.max_jobs is not None:
            items = items[: max(0, self.max_jobs)]
        self.scheduled = len(items)
        return items

    def ticket(self, item: WorkItem) -> Ticket:
        """The job's place at the rate gate (a request of n images)."""
        n = item.job.params.get("n")
        return self.gate.ticket(images=n if isinstance(n, int) and n > 0 else 1)

    def waits(self, ticket: Ticket) -> Iterator[float]:
        """The pauses before a job's request: its turn at the gate, then while a 429 pause lasts.

        Lazy, so each is worked out after the runner slept the one before. Unlike the other
        methods it runs on the sync runner's worker threads: it touches only the locked gate.
        """
        yield ticket.take()
        while (left := self.gate.pause_left()) > 0:
            yield left

    def _key(self, ident: str) -> str:
        if self.batch_id is None:
            return f"ig-{uuid.uuid4().hex}"
        return "ig-batch-" + hashlib.sha256(f"{self.batch_id}:{ident}".encode()).hexdigest()[:40]

    # -- the plans each job runs (on the runner's workers) -----------------------------------

    def stages(self, core: Core, default_model: str) -> Iterator[Stage]:
        """What the runner runs, stage after stage: one request per job; or (`async_jobs`) one
        submission per job, then, once every job is submitted, one wait per submitted job."""
        if not self.async_jobs:
            yield self.todo(), lambda item: self.request_plan(core, item, default_model), self.finish
            return
        waiting: list[Submitted] = []

        def submitted(item: WorkItem, outcome: Submitted | Exception) -> None:
            if isinstance(outcome, Submitted):
                self.submitted(outcome)
                waiting.append(outcome)
            else:
                self.finish(item, outcome)

        def ended(job: Submitted, outcome: Outcome) -> None:
            self.finish(job.item, outcome, job.job.state.id)

        try:
            yield self.todo(), lambda item: self.submit_plan(core, item, default_model), submitted
        finally:  # also when the runner stops there (Ctrl-C): the generator is closed
            self.jobs_file.flush()
        yield waiting, lambda job: self.wait_plan(core, job), ended

    def request_plan(self, core: Core, item: WorkItem, default_model: str) -> Plan[ImageResult]:
        """One job as one request: its turn at the rate gate, then the call (retried)."""
        ticket = self.ticket(item)
        try:
            for delay in self.waits(ticket):
                yield Sleep(delay)
            return (yield from core.images(item.to_call(default_model), ticket.observe))
        finally:
            ticket.close()

    def submit_plan(self, core: Core, item: WorkItem, default_model: str) -> Plan[Submitted]:
        """The job's server job: the one an earlier run submitted while it may still deliver,
        else a submission (at its turn at the rate gate) under this attempt's key."""
        known, attempt = self._known(item)
        if known is not None:
            try:
                state: jobs.JobState | None = yield from jobs.get(core, known)
            except NotFoundError:
                state = None
            if state is not None and state.status not in (jobs.FAILED, jobs.CANCELLED):
                call = item.to_call(default_model)
                started = float(state.created_at) if state.created_at is not None else core.env.clock()
                return Submitted(item, jobs.Tracked(call, state, started), attempt)
            attempt += 1  # failed, cancelled or gone: a new job, under a new key
        ticket = self.ticket(item)
        try:
            for delay in self.waits(ticket):
                yield Sleep(delay)
            keyed = dataclasses.replace(item, idempotency_key=self._job_key(item, attempt))
            job = yield from jobs.submit(core, keyed.to_call(default_model), observe=ticket.observe)
        finally:
            ticket.close()
        return Submitted(item, job, attempt)

    def wait_plan(self, core: Core, submitted: Submitted) -> Plan[ImageResult]:
        """Poll the job until it ends: its images, or its failure raised."""
        return jobs.wait(core, submitted.job, poll_interval=self.poll_interval)

    def _known(self, item: WorkItem) -> tuple[str | None, int]:
        """(server job id, attempt) an earlier run recorded for this job, while its content is the same."""
        entry = self._previous.get(item.id)
        if not entry or entry.get("digest") != content_digest(item.job) or not entry.get("job"):
            return None, 0
        attempt = entry.get("attempt")
        return str(entry["job"]), attempt if isinstance(attempt, int) else 0

    def _job_key(self, item: WorkItem, attempt: int) -> str:
        material = f"{self.jobs_batch_id}:{item.id}:{content_digest(item.job)}:{attempt}"
        return "ig-job-" + hashlib.sha256(material.encode()).hexdigest()[:40]

    def submitted(self, submitted: Submitted) -> None:
        """Note the job's server job in the jobs file (at once, unless the file is large)."""
        server_id = submitted.job.state.id
        if server_id is None:  # the server answered at once: nothing to find again
            return
        self._submitted[submitted.item.id] = {
            "job": server_id,
            "digest": content_digest(submitted.item.job),
            "attempt": submitted.attempt,
        }
        assert self.jobs_batch_id is not None
        self.jobs_file.save(self.jobs_batch_id, self._submitted)

    def finish(self, item: WorkItem, outcome: Outcome, server_job_id: str | None = None) -> JobResult:
        """Record one job's outcome: save its images, append to the results file, report."""
        slot = self.results[item.index]
        if isinstance(outcome, ImageResult):
            try:
                files = self._save(item.id, outcome)
                done = JobResult(
                    slot.index,
                    slot.id,
                    item.job,
                    "done",
                    outcome,
                    cost_micro_usd=0 if outcome.cached else outcome.cost_micro_usd,
                    files=tuple(files),
                )
            except (OSError, ValueError) as exc:
                done = JobResult(
                    slot.index,
                    slot.id,
                    item.job,
                    "failed",
                    outcome,
                    error=f"could not save the images: {exc}",
                    error_code="save_failed",
                )
        else:
            message, code = _describe(outcome)
            done = JobResult(slot.index, slot.id, item.job, "failed", error=message, error_code=code)
        if server_job_id is not None:
            done = dataclasses.replace(done, server_job_id=server_job_id)
        self.results[item.index] = done
        self.finished += 1
        if self.file is not None:
            record = {
                "id": done.id,
                "index": done.index,
                "ok": done.ok,
                "prompt": truncate_prompt(item.job.prompt),
                "files": list(done.files),
                "cost_micro_usd": done.cost_micro_usd,
                "error": done.error,
                "error_code": done.error_code,
                "finished_at": time.time(),
            }
            self.file.append(record if server_job_id is None else {**record, "job_id": server_job_id})
        if self.on_progress is not None:
            self.on_progress(self.progress(), done)
        return done

    def _save(self, ident: str, result: ImageResult) -> list[str]:
        if self.out_dir is None:
            return []
        stem = _UNSAFE.sub("_", ident)
        return [str(path) for path in result.save(self.out_dir / stem)]

    def progress(self) -> BatchProgress:
        """Counts, cost and ETA so far."""
        fresh = [r for r in self.results if not r.resumed]
        elapsed = max(0.0, self.clock() - self.started)
        remaining = self.scheduled - self.finished
        eta = elapsed / self.finished * remaining if self.finished else None
        return BatchProgress(
            total=len(self.results),
            done=sum(1 for r in self.results if r.state == "done"),
            failed=sum(1 for r in self.results if r.state == "failed"),
            resumed=sum(1 for r in self.results if r.resumed),
            cost_micro_usd=sum(r.cost_micro_usd for r in fresh),
            elapsed_s=elapsed,
            eta_s=eta,
        )

    def result(self) -> BatchResult:
        """Every job's outcome in input order."""
        return BatchResult(tuple(self.results))


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, APIError):
        return str(exc), error_code(exc)
    return f"{type(exc).__name__}: {exc}", type(exc).__name__
