"""Asynchronous jobs (flow/jobs.py): GET /v1/images/jobs[/{id}], POST /v1/images/jobs/{id}/cancel,
and POST /v1/webhook_secret (a new signing secret for the key's webhooks, shown once). A job is
submitted with `Prefer: respond-async` on /v1/images/generations or /edits (http/routes/images.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from imagegate.flow.jobs import Jobs
from imagegate.http.deps import KeyDep
from imagegate.http.fastjson import FastJSONResponse

router = APIRouter(tags=["jobs"])


async def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs  # type: ignore[no-any-return]


JobsDep = Annotated[Jobs, Depends(get_jobs)]
NO_STORE = {"cache-control": "no-store"}


@router.get("/v1/images/jobs", summary="The key's jobs, newest first")
async def list_jobs(
    jobs: JobsDep,
    key: KeyDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=40)] = None,
) -> FastJSONResponse:
    return FastJSONResponse(await jobs.page(key, limit, after), headers=NO_STORE)


@router.get("/v1/images/jobs/{job_id}", summary="A job: its status, and its images once completed")
async def get_job(job_id: str, jobs: JobsDep, key: KeyDep) -> FastJSONResponse:
    return FastJSONResponse(await jobs.view(await jobs.get(job_id, key)), headers=NO_STORE)


@router.post(
    "/v1/images/jobs/{job_id}/cancel", summary="Cancel a job (refunded in full when nothing was delivered)"
)
async def cancel_job(job_id: str, jobs: JobsDep, key: KeyDep) -> FastJSONResponse:
    return FastJSONResponse(await jobs.cancel(job_id, key), headers=NO_STORE)


@router.post("/v1/webhook_secret", summary="A new webhook signing secret for this key (shown once)")
async def rotate_webhook_secret(jobs: JobsDep, key: KeyDep) -> dict[str, Any]:
    return await jobs.rotate_secret(key)
