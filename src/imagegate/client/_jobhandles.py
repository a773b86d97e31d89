"""Job handles and `client.jobs`: thin shells over the plans of `_imagejobs.py`.

    job = client.submit("a lighthouse at dusk", quality="high")    # 202: queued
    job.status, job.queue_position                                 # as last seen; refresh() asks
    result = job.wait(timeout=600)                                 # the ImageResult of generate()
    client.jobs.list(limit=20, after=None).data, client.jobs.get(job.id), job.cancel()

`ImageJob` runs them with the sync client's driver, `AsyncImageJob` (and `AsyncJobs`) awaits them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from imagegate.client import _imagejobs as plans
from imagegate.client._core import Core
from imagegate.client._imagejobs import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, JobState, Tracked
from imagegate.client._plan import Plan
from imagegate.client._transport import AsyncDriver, SyncDriver
from imagegate.client._types import ImageResult

H = TypeVar("H")


class _Handle:
    """What both handles share: the job as last seen (no request is made by these properties)."""

    def __init__(self, core: Core, job: Tracked) -> None:
        self._core = core
        self._job = job

    @property
    def state(self) -> JobState:
        """The job object as the server last sent it."""
        return self._job.state

    @property
    def id(self) -> str | None:
        """The job's id (`imgjob_...`); None when the server answered the submission at once."""
        return self._job.state.id

    @property
    def status(self) -> str:
        """queued, in_progress, completed, failed or cancelled, as last seen (refresh() asks)."""
        return self._job.state.status

    @property
    def ended(self) -> bool:
        """Whether the job was last seen completed, failed or cancelled."""
        return self._job.state.ended

    @property
    def queue_position(self) -> int | None:
        """Jobs ahead of this one while it is queued, as last fetched (the 202 has none: refresh())."""
        return self._job.state.queue_position

    @property
    def webhook_secret(self) -> str | None:
        """The key's webhook signing secret, in the answer to its first webhook job only."""
        return self._job.state.webhook_secret

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status}>"

    def _wait(self, timeout: float | None, interval: float, max_interval: float) -> Plan[ImageResult]:
        core, job = self._core, self._job
        return plans.wait(core, job, timeout=timeout, poll_interval=interval, max_poll_interval=max_interval)


class ImageJob(_Handle):
    """A job submitted to (or found on) the server, followed with the synchronous client."""

    def __init__(self, core: Core, driver: SyncDriver, job: Tracked) -> None:
        super().__init__(core, job)
        self._driver = driver

    def refresh(self) -> ImageJob:
        """Ask the server where the job stands (an ended job is not asked again); returns the
        handle (`job.refresh().status`)."""
        self._driver.run(plans.refresh(self._core, self._job))
        return self

    def wait(
        self,
        timeout: float | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> ImageResult:
        """Poll until the job ends: its ImageResult, or JobFailedError/JobCancelledError; after
        `timeout` seconds JobTimeoutError (the job goes on: wait again)."""
        return self._driver.run(self._wait(timeout, poll_interval, max_poll_interval))

    def cancel(self) -> ImageJob:
        """Cancel the job (refunded for what was not delivered); a job that ended stays as it was."""
        if self.id is not None and not self.ended:
            self._job.state = self._driver.run(plans.cancel(self._core, self.id))
        return self


class AsyncImageJob(_Handle):
    """A job submitted to (or found on) the server, followed with the asyncio client."""

    def __init__(self, core: Core, driver: AsyncDriver, job: Tracked) -> None:
        super().__init__(core, job)
        self._driver = driver

    async def refresh(self) -> AsyncImageJob:
        """Ask the server where the job stands; returns the handle."""
        await self._driver.run(plans.refresh(self._core, self._job))
        return self

    async def wait(
        self,
        timeout: float | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> ImageResult:
        """Poll until the job ends; see `ImageJob.wait`."""
        return await self._driver.run(self._wait(timeout, poll_interval, max_poll_interval))

    async def cancel(self) -> AsyncImageJob:
        """Cancel the job (refunded for what was not delivered); a job that ended stays as it was."""
        if self.id is not None and not self.ended:
            self._job.state = await self._driver.run(plans.cancel(self._core, self.id))
        return self


@dataclass(frozen=True, slots=True)
class JobPage(Generic[H]):
    """One page of the key's jobs, newest first; pass `last_id` as `after` for the next."""

    data: tuple[H, ...]
    has_more: bool
    first_id: str | None
    last_id: str | None

    def __iter__(self) -> Iterator[H]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class Jobs:
    """`client.jobs`: the key's asynchronous jobs (GET /v1/images/jobs ...)."""

    def __init__(self, core: Core, driver: SyncDriver, default_model: str) -> None:
        self._core = core
        self._driver = driver
        self._default_model = default_model

    def _handle(self, state: JobState) -> ImageJob:
        return ImageJob(self._core, self._driver, plans.tracked(self._core, state, self._default_model))

    def list(self, limit: int = 20, after: str | None = None) -> JobPage[ImageJob]:
        """A page of at most `limit` (1-100) jobs after the job `after`, newest first (no results:
        `wait()` or `refresh()` fetches a completed one's)."""
        listed = self._driver.run(plans.page(self._core, limit, after))
        return JobPage(
            tuple(map(self._handle, listed.data)), listed.has_more, listed.first_id, listed.last_id
        )

    def get(self, job_id: str) -> ImageJob:
        """The job with this id (NotFoundError if the key has none)."""
        return self._handle(self._driver.run(plans.get(self._core, job_id)))

    def cancel(self, job_id: str) -> ImageJob:
        """Cancel the job with this id; returns it as it stands after."""
        return self._handle(self._driver.run(plans.cancel(self._core, job_id)))


class AsyncJobs:
    """`async_client.jobs`: the key's asynchronous jobs, awaited."""

    def __init__(self, core: Core, driver: AsyncDriver, default_model: str) -> None:
        self._core = core
        self._driver = driver
        self._default_model = default_model

    def _handle(self, state: JobState) -> AsyncImageJob:
        return AsyncImageJob(self._core, self._driver, plans.tracked(self._core, state, self._default_model))

    async def list(self, limit: int = 20, after: str | None = None) -> JobPage[AsyncImageJob]:
        """A page of at most `limit` (1-100) jobs after the job `after`, newest first."""
        listed = await self._driver.run(plans.page(self._core, limit, after))
        return JobPage(
            tuple(map(self._handle, listed.data)), listed.has_more, listed.first_id, listed.last_id
        )

    async def get(self, job_id: str) -> AsyncImageJob:
        """The job with this id (NotFoundError if the key has none)."""
        return self._handle(await self._driver.run(plans.get(self._core, job_id)))

    async def cancel(self, job_id: str) -> AsyncImageJob:
        """Cancel the job with this id; returns it as it stands after."""
        return self._handle(await self._driver.run(plans.cancel(self._core, job_id)))
