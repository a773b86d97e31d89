"""The imagegate SDK: imports httpx and the standard library only, never the server side.

    from imagegate import Client
    client = Client()  # IMAGEGATE_API_KEY / IMAGEGATE_BASE_URL, else OPENAI_*
    result = client.generate("a red fox in a blue forest", size="1024x1536", quality="low")
    result.image.save("fox.png"); print(result.cost_usd)
    job = client.submit("the same, slowly", quality="high"); result = job.wait()  # async jobs

Modules: `batch`, `cache`, `monitor`, `pricing`, `prompts`, `recipes` (public); `_client`,
`_core` (the shared logic, sans-IO), `_transport` (sync/async drivers), `_errors`, `_retry`,
`_types`, `_inputs`, `_requests`, `_stream`, `_sse`, `_jobs`, `_batchrun`, `_ratelimit`,
`_batchfiles`, `_imagejobs` (asynchronous jobs, sans-IO), `_jobhandles` (job handles and
`client.jobs`).
"""

from imagegate.client._client import AsyncClient, Client, resolve_connection
from imagegate.client._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ImagegateError,
    InsufficientQuotaError,
    InternalServerError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from imagegate.client._imagejobs import JobState
from imagegate.client._jobhandles import AsyncImageJob, AsyncJobs, ImageJob, JobPage, Jobs
from imagegate.client._retry import RetryPolicy
from imagegate.client._types import Image, ImageResult, StreamEvent, Usage
from imagegate.client.batch import BatchProgress, BatchResult, Job, JobResult
from imagegate.client.cache import ImageCache
from imagegate.client.monitor import CallRecord, Monitor, Stats
from imagegate.client.pricing import DEFAULT_PRICES, ModelPrice, PriceTable, estimate_cost

__all__ = [
    "DEFAULT_PRICES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncImageJob",
    "AsyncJobs",
    "AuthenticationError",
    "BadRequestError",
    "BatchProgress",
    "BatchResult",
    "CallRecord",
    "Client",
    "ConflictError",
    "Image",
    "ImageCache",
    "ImageJob",
    "ImageResult",
    "ImagegateError",
    "InsufficientQuotaError",
    "InternalServerError",
    "Job",
    "JobCancelledError",
    "JobFailedError",
    "JobPage",
    "JobResult",
    "JobState",
    "JobTimeoutError",
    "Jobs",
    "ModelPrice",
    "Monitor",
    "NotFoundError",
    "PermissionDeniedError",
    "PriceTable",
    "RateLimitError",
    "RetryPolicy",
    "Stats",
    "StreamEvent",
    "UnprocessableEntityError",
    "Usage",
    "estimate_cost",
    "resolve_connection",
]
