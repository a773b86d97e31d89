"""Asynchronous jobs (`Prefer: respond-async`), sans-IO: the job object and the plans that submit,
fetch, list, cancel and wait for jobs (run by the drivers in `_transport.py`).

A submission is the request a synchronous call sends, plus `Prefer: respond-async` and an
Idempotency-Key (the caller's, else a fresh one reused by every retry, so a retried submission
never makes two jobs); imagegate answers 202 with an `image.job`. `GET images/jobs/{id}` says
`queued`, `in_progress`, `completed` (with `result`, the ImagesResponse a synchronous call
returns), `failed` or `cancelled` (with OpenAI's `error` object). A server that answers the
submission at once (200 with `data`: not imagegate) gives a job that is already completed, with
no id.

`wait` polls: first at once, then after `poll_interval`, growing x1.5 up to `max_poll_interval`;
an answer's `Retry-After` is waited instead when it is longer, and a 429 or 5xx on a poll is
retried as any request is. It returns the `ImageResult` a synchronous call returns (priced from
the result's usage, images downloaded when only URLs came) or raises `JobFailedError` /
`JobCancelledError`. Each job is recorded in the client's monitor once, when its end is seen.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from imagegate.client._core import Core, decode_json, new_idempotency_key
from imagegate.client._errors import (
    APIError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    retry_after,
)
from imagegate.client._plan import Observer, Plan, Reply, Request, Sleep, send
from imagegate.client._requests import Call, to_request
from imagegate.client._types import ImageResult

QUEUED, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = (
    "queued",
    "in_progress",
    "completed",
    "failed",
    "cancelled",
)
ENDED = frozenset({COMPLETED, FAILED, CANCELLED})
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_MAX_POLL_INTERVAL = 10.0
POLL_GROWTH = 1.5
ASYNC_HEADERS = {"Prefer": "respond-async"}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class JobState:
    """What the server last said of a job (the `image.job` object); `raw` is the whole object."""

    id: str | None
    status: str
    kind: str | None = None
    model: str | None = None
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    queue_position: int | None = None
    error: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None  # the ImagesResponse, once completed (not in listings)
    webhook: Mapping[str, Any] | None = None
    webhook_secret: str | None = None  # only in the 202 of a key's first webhook job
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """Whether the job is completed, failed or cancelled."""
        return self.status in ENDED

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobState:
        """Parse an `image.job` object; APIError if it is not one."""
        job_id, status = body.get("id"), body.get("status")
        if not isinstance(job_id, str) or not isinstance(status, str):
            raise APIError("The server's answer is not a job: it has no 'id' and 'status'.")
        secret = body.get("webhook_secret")
        return cls(
            id=job_id,
            status=status,
            kind=body.get("kind") if isinstance(body.get("kind"), str) else None,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            created_at=_int(body.get("created_at")),
            started_at=_int(body.get("started_at")),
            finished_at=_int(body.get("finished_at")),
            queue_position=_int(body.get("queue_position")),
            error=_mapping(body.get("error")),
            result=_mapping(body.get("result")),
            webhook=_mapping(body.get("webhook")),
            webhook_secret=secret if isinstance(secret, str) else None,
            raw=dict(body),
        )

    @classmethod
    def answered(cls, body: Mapping[str, Any]) -> JobState:
        """A job the server did at once (it answered the submission with the images)."""
        return cls(id=None, status=COMPLETED, created_at=_int(body.get("created")), result=body, raw={})


@dataclass(frozen=True, slots=True)
class JobList:
    """One page of `GET images/jobs` (newest first)."""

    data: tuple[JobState, ...]
    has_more: bool
    first_id: str | None
    last_id: str | None


@dataclass(slots=True)
class Tracked:
    """A job as a handle follows it: the call it was submitted for, its last state, its end."""

    call: Call
    state: JobState
    started: float  # when it was submitted (the monitor's timestamp and latency)
    result: ImageResult | None = None
    failure: JobFailedError | None = None


def tracked(core: Core, state: JobState, default_model: str) -> Tracked:
    """Follow a job this client did not submit (from `jobs.get` or `jobs.list`): its prompt and
    parameters are unknown, so the result carries the model and kind only."""
    kind: Literal["generate", "edit"] = "edit" if state.kind == "edit" else "generate"
    call = Call(kind, "", state.model or default_model)
    started = float(state.created_at) if state.created_at is not None else core.env.clock()
    return Tracked(call, state, started)


def _job_path(job_id: str, suffix: str = "") -> str:
    return f"images/jobs/{urllib.parse.quote(job_id, safe='')}{suffix}"


def submit(
    core: Core, call: Call, webhook_url: str | None = None, observe: Observer | None = None
) -> Plan[Tracked]:
    """POST the call with `Prefer: respond-async` (and `webhook_url`); the job the server made.
    `observe` sees every answer (a batch's rate gate)."""
    started = core.env.clock()
    headers = {**core.headers(call.idempotency_key or new_idempotency_key()), **ASYNC_HEADERS}
    request = to_request(call, headers, extra={"webhook_url": webhook_url} if webhook_url else None)
    try:
        reply = yield from send(request, core.policy, core.env, observe)
        body = decode_json(reply)
        state = (
            JobState.answered(body) if "data" in body and "status" not in body else JobState.from_json(body)
        )
    except APIError as exc:
        core.record(call, started, error=exc)
        raise
    return Tracked(call, state, started)


def _get(core: Core, job_id: str) -> Plan[tuple[JobState, Reply]]:
    reply = yield from send(Request("GET", _job_path(job_id), core.headers()), core.policy, core.env)
    return JobState.from_json(decode_json(reply)), reply


def get(core: Core, job_id: str) -> Plan[JobState]:
    """GET images/jobs/{id}."""
    state, _ = yield from _get(core, job_id)
    return state


def cancel(core: Core, job_id: str) -> Plan[JobState]:
    """POST images/jobs/{id}/cancel: the job as it stands after (cancelled, or already ended)."""
    request = Request("POST", _job_path(job_id, "/cancel"), core.headers())
    reply = yield from send(request, core.policy, core.env)
    return JobState.from_json(decode_json(reply))


def page(core: Core, limit: int = 20, after: str | None = None) -> Plan[JobList]:
    """GET images/jobs?limit=&after=: the key's jobs, newest first, without their results."""
    query = urllib.parse.urlencode({"limit": limit, **({"after": after} if after else {})})
    reply = yield from send(Request("GET", f"images/jobs?{query}", core.headers()), core.policy, core.env)
    body = decode_json(reply)
    data = body.get("data")
    states = (
        tuple(JobState.from_json(item) for item in data if isinstance(item, Mapping))
        if isinstance(data, list)
        else ()
    )
    first, last = body.get("first_id"), body.get("last_id")
    return JobList(
        states,
        bool(body.get("has_more")),
        first if isinstance(first, str) else None,
        last if isinstance(last, str) else None,
    )


def refresh(core: Core, job: Tracked) -> Plan[JobState]:
    """Ask the server where the job stands (nothing to ask once it ended with everything known)."""
    if job.state.id is not None and not _settled(job.state):
        job.state = yield from get(core, job.state.id)
    return job.state


def _settled(state: JobState) -> bool:
    """Ended, with everything its end needs (a listing leaves a completed job's result out)."""
    return state.ended and (state.status != COMPLETED or state.result is not None)


def wait(
    core: Core,
    job: Tracked,
    *,
    timeout: float | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
) -> Plan[ImageResult]:
    """Poll until the job ends; its ImageResult, or JobFailedError / JobTimeoutError."""
    if poll_interval <= 0:
        raise ValueError("poll_interval must be more than 0 seconds")
    deadline = None if timeout is None else core.env.clock() + timeout
    delay = poll_interval
    while not _settled(job.state):
        assert job.state.id is not None  # a job without an id was answered at once: settled
        job.state, reply = yield from _get(core, job.state.id)
        if _settled(job.state):
            break
        now = core.env.clock()
        pause = max(delay, retry_after(reply.headers, now) or 0.0)
        if deadline is not None:
            if now >= deadline:
                raise JobTimeoutError(
                    f"job {job.state.id} is still {job.state.status} after {timeout:g}s", job=job.state
                )
            pause = min(pause, deadline - now)
        yield Sleep(pause)
        delay = min(delay * POLL_GROWTH, max(max_poll_interval, poll_interval))
    return (yield from _outcome(core, job))


def _outcome(core: Core, job: Tracked) -> Plan[ImageResult]:
    """The ended job's ImageResult (built and recorded once), or its failure raised."""
    if job.result is not None:
        return job.result
    if job.failure is not None:
        raise job.failure
    state = job.state
    if state.status != COMPLETED:
        error = dict(state.error or {})
        cls = JobCancelledError if state.status == CANCELLED else JobFailedError
        job.failure = cls(str(error.get("message") or f"The job was {state.status}."), job=state, error=error)
        core.record(job.call, job.started, error=job.failure)
        raise job.failure
    assert state.result is not None
    table = yield from core.price_table()
    data = state.result.get("data")
    body = {**state.result, "data": [dict(i) if isinstance(i, Mapping) else i for i in data or []]}
    yield from core.inline_urls(body)  # the copy gets the bytes; the state keeps what the server said
    job.result = core.result(job.call, body, table, {})
    core.record(job.call, job.started, result=job.result)
    return job.result
