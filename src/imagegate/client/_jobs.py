"""Batch jobs and their outcomes: what a batch takes in and hands back, and job files.

`load_jobs` reads JSONL (one object per line), a JSON array, or CSV (a header row; `images`
separated by `|`; numeric columns such as `n` and `seed` become ints). Relative image paths
are resolved against the jobs file's directory.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypedDict

from imagegate.client._inputs import URL_PREFIXES, ImageInput, load_input, load_inputs
from imagegate.client._requests import Call, make_call
from imagegate.client._types import ImageResult
from imagegate.client.pricing import micro_to_usd

HIGH_PRIORITY_MARKERS = ("hero image", "main product")


@dataclass(frozen=True, slots=True)
class Job:
    """One batch job: a prompt, its parameters, and (for an edit) reference images and mask."""

    prompt: str
    params: Mapping[str, Any] = field(default_factory=dict)
    images: tuple[ImageInput, ...] = ()
    mask: ImageInput | None = None
    id: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Job:
        """A job from a dict: `prompt`, optional `id`, `images` (or `image`), `mask`, other params."""
        data = dict(raw)
        prompt = data.pop("prompt", None)
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"a job needs a non-empty 'prompt': {raw!r}")
        images = data.pop("images", None) or data.pop("image", None) or ()
        images = tuple(images) if isinstance(images, list | tuple) else (images,)
        job_id = data.pop("id", None)
        mask = data.pop("mask", None)
        return cls(
            prompt,
            {k: v for k, v in data.items() if v is not None},
            images,
            mask,
            str(job_id) if job_id is not None else None,
        )


def as_job(value: Job | str | Mapping[str, Any]) -> Job:
    """A Job from a Job, a bare prompt or a dict."""
    if isinstance(value, Job):
        return value
    if isinstance(value, str):
        return Job(value)
    return Job.from_mapping(value)


def is_high_priority(prompt: str) -> bool:
    """The guide's rule: hero images and main product shots are high priority."""
    text = prompt.lower()
    return any(marker in text for marker in HIGH_PRIORITY_MARKERS)


def apply_priority(job: Job) -> Job:
    """Quality high for high-priority prompts, low for the rest (unless the job set one)."""
    if job.params.get("quality"):
        return job
    quality = "high" if is_high_priority(job.prompt) else "low"
    return replace(job, params={**job.params, "quality": quality})


def _identity(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return hashlib.sha256(bytes(value)).hexdigest()
    return str(value)


def content_digest(job: Job) -> str:
    """SHA-256 of what the job asks for: prompt, parameters, input images and mask."""
    material = json.dumps(
        [job.prompt, dict(job.params), [_identity(i) for i in job.images], _identity(job.mask)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def job_id(job: Job, index: int) -> str:
    """The job's own id, else one from its position and content (stable while the file is)."""
    if job.id:
        return job.id
    return f"{index:05d}-{content_digest(job)[:10]}"


@dataclass(frozen=True, slots=True)
class JobResult:
    """What became of one job: done, failed, or pending (not run yet)."""

    index: int
    id: str
    job: Job
    state: Literal["done", "failed", "pending"] = "pending"
    result: ImageResult | None = None
    error: str | None = None
    error_code: str | None = None
    cost_micro_usd: int = 0
    files: tuple[str, ...] = ()
    resumed: bool = False  # done by an earlier run, read back from the results file
    server_job_id: str | None = None  # the server's job (imgjob_...) when run as asynchronous jobs

    @property
    def ok(self) -> bool:
        """Whether the job is done."""
        return self.state == "done"

    @property
    def cost_usd(self) -> float:
        """What this job cost in dollars."""
        return micro_to_usd(self.cost_micro_usd)


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a batch stands, passed to `on_progress` after every job."""

    total: int
    done: int
    failed: int
    resumed: int
    cost_micro_usd: int
    elapsed_s: float
    eta_s: float | None

    @property
    def cost_usd(self) -> float:
        """Dollars spent by this run so far."""
        return micro_to_usd(self.cost_micro_usd)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Every job's outcome, in input order."""

    results: tuple[JobResult, ...]

    def __iter__(self) -> Iterator[JobResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> JobResult:
        return self.results[index]

    @property
    def succeeded(self) -> list[JobResult]:
        """The jobs that are done (this run or an earlier one)."""
        return [r for r in self.results if r.state == "done"]

    @property
    def failed(self) -> list[JobResult]:
        """The jobs that failed."""
        return [r for r in self.results if r.state == "failed"]

    @property
    def pending(self) -> list[JobResult]:
        """The jobs not run (max_jobs reached)."""
        return [r for r in self.results if r.state == "pending"]

    @property
    def cost_usd(self) -> float:
        """Dollars spent by this run (resumed jobs are not counted again)."""
        return micro_to_usd(sum(r.cost_micro_usd for r in self.results if not r.resumed))


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A job scheduled to run: its slot, id and the idempotency key its request carries."""

    index: int
    id: str
    job: Job
    idempotency_key: str

    def to_call(self, default_model: str) -> Call:
        """The client call for this job (loads the input images; errors fail the job)."""
        params = {**self.job.params, "idempotency_key": self.idempotency_key}
        if self.job.images:
            mask = load_input(self.job.mask, "mask") if self.job.mask is not None else None
            return make_call(
                "edit",
                self.job.prompt,
                params,
                default_model,
                tuple(load_inputs(list(self.job.images))),
                mask,
            )
        return make_call("generate", self.job.prompt, params, default_model)


class BatchOptions(TypedDict, total=False):
    """Options of `Client.batch` / `AsyncClient.batch` (see `imagegate.client.batch`)."""

    concurrency: int
    rate_limit: float | None
    priority: bool
    results_file: str | os.PathLike[str] | None
    out_dir: str | os.PathLike[str] | None
    on_progress: Callable[[BatchProgress, JobResult], Any] | None
    max_jobs: int | None
    async_jobs: bool
    state_file: str | os.PathLike[str] | None
    poll_interval: float


INT_COLUMNS = frozenset({"n", "seed", "output_compression", "partial_images"})


def _coerce(name: str, value: str) -> Any:
    if name in INT_COLUMNS:
        return int(value)
    return value


def _resolve(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or value.startswith(URL_PREFIXES) or os.path.isabs(value):
        return value
    candidate = base / value
    return str(candidate) if candidate.exists() or not Path(value).exists() else value


def load_jobs(path: str | os.PathLike[str]) -> list[Job]:
    """Jobs from a .jsonl/.ndjson, .json (array) or .csv file."""
    source = Path(path).expanduser()
    text = source.read_text("utf-8")
    if source.suffix.lower() == ".csv":
        rows: list[dict[str, Any]] = []
        for row in csv.DictReader(text.splitlines()):
            clean = {k.strip(): v.strip() for k, v in row.items() if k and v is not None and v.strip()}
            if "images" in clean:
                clean["images"] = [p.strip() for p in clean["images"].split("|") if p.strip()]
            rows.append({k: v if k == "images" else _coerce(k, v) for k, v in clean.items()})
    elif source.suffix.lower() == ".json":
        loaded = json.loads(text)
        rows = loaded if isinstance(loaded, list) else [loaded]
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"{source}:{number}: not a JSON object: {exc}") from exc
    jobs = []
    for row in rows:
        job = as_job(row if isinstance(row, str | Mapping) else str(row))
        jobs.append(
            replace(
                job,
                images=tuple(_resolve(i, source.parent) for i in job.images),
                mask=_resolve(job.mask, source.parent),
            )
        )
    return jobs
