"""The bookkeeping of one batch run, shared by the sync and async runners in `batch.py`:
which jobs to run and in what order, the results file, saving images, progress."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from imagegate.client._core import error_code
from imagegate.client._errors import APIError
from imagegate.client._jobs import (
    BatchProgress,
    BatchResult,
    Job,
    JobResult,
    WorkItem,
    apply_priority,
    as_job,
    is_high_priority,
    job_id,
)
from imagegate.client._ratelimit import RateGate, Ticket
from imagegate.client._types import ImageResult
from imagegate.client.monitor import truncate_prompt

Outcome = ImageResult | BaseException
ProgressCallback = Callable[[BatchProgress, JobResult], Any]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class ResultsFile:
    """A JSONL file: a header line with the batch id, then one line per finished job."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        """(batch id, the last record of every job id) read from the file, if it exists."""
        batch_id: str | None = None
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return None, records
        for line in self.path.read_text("utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill
            if not isinstance(record, dict):
                continue
            if record.get("type") == "batch":
                batch_id = batch_id or str(record.get("batch_id"))
            elif "id" in record:
                records[str(record["id"])] = record
        return batch_id, records

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one line (flushed at once, so a kill loses at most the line being written)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


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

    def finish(self, item: WorkItem, outcome: Outcome) -> JobResult:
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
        self.results[item.index] = done
        self.finished += 1
        if self.file is not None:
            self.file.append(
                {
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
            )
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
