"""The SDK's exceptions, mirroring the server's error tree and openai-python's names.

    ImagegateError
    ├── APIError                        .message .request_id
    │   ├── APIConnectionError          the request never got an HTTP answer
    │   │   └── APITimeoutError         ... because it timed out
    │   ├── APIStatusError              an HTTP error answer: .status_code .type .code .param .body
    │   │   ├── BadRequestError         400 (.param names the offending field)
    │   │   ├── AuthenticationError     401
    │   │   ├── PermissionDeniedError   403
    │   │   ├── NotFoundError           404
    │   │   ├── ConflictError           409
    │   │   ├── UnprocessableEntityError 422
    │   │   ├── RateLimitError          429
    │   │   │   └── InsufficientQuotaError  429 with code insufficient_quota (never retried)
    │   │   └── InternalServerError     >= 500
    │   └── JobFailedError              an asynchronous job ended failed: .job .type .code .param
    │       └── JobCancelledError       ... or was cancelled
    └── JobTimeoutError                 job.wait(timeout=...) gave up; the job goes on (.job)

`make_status_error` reads OpenAI's `{"error": {"message", "type", "param", "code"}}` body and
picks the class from one table, the reverse of the server's `http/errors.py`.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegate.client._imagejobs import JobState


class ImagegateError(Exception):
    """Base of every exception the SDK raises."""


class APIError(ImagegateError):
    """A request failed: no answer, or an error answer."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIStatusError(APIError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        type: str | None = None,  # the field is called "type" in the body
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        headers = dict(headers or {})
        super().__init__(message, request_id=headers.get("x-request-id"))
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.type = type
        self.code = code
        self.param = param
        self.retry_after: float | None = None  # seconds the server asked to wait (Retry-After)
        self.retry_at: float | None = None  # when that is, by the client's clock (epoch seconds)

    def not_retried(self) -> APIStatusError:
        """Say in the message that the wait was too long to retry, and when to come back."""
        if self.retry_after is not None and self.retry_at is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(math.ceil(self.retry_at)))
            self.message += (
                f" Not retried: the server asks to wait {format_wait(self.retry_after)}; "
                f"try again after {when}."
            )
        return self

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        param = f" (param: {self.param})" if self.param else ""
        return f"{self.status_code}{code}: {self.message}{param}"


class BadRequestError(APIStatusError):
    """400: the request is invalid; `.param` names the field and `.code` says why."""


class AuthenticationError(APIStatusError):
    """401: missing, unknown or revoked API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (or a signed URL was tampered with or expired)."""


class NotFoundError(APIStatusError):
    """404: unknown URL or model."""


class ConflictError(APIStatusError):
    """409: a conflicting request is in flight (e.g. the same idempotency key); retried."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests; retried after the server's `Retry-After` unless that is longer
    than `RetryPolicy.max_retry_after` (then `.retry_after` / `.retry_at` say when to come back)."""


class InsufficientQuotaError(RateLimitError):
    """429 with code `insufficient_quota`: out of credit. Not retried: it needs a top-up."""


class InternalServerError(APIStatusError):
    """>= 500: the server or its upstream failed; retried."""


class JobFailedError(APIError):
    """An asynchronous job ended `failed` (refunded): its OpenAI error object as `.type`,
    `.code`, `.param` and `.error`; `.job` is its last `JobState`."""

    def __init__(self, message: str, *, job: JobState, error: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, request_id=None)
        fields = dict(error or {})
        self.job = job
        self.error = fields
        self.type: str | None = _text(fields.get("type"))
        self.code: str | None = _text(fields.get("code"))
        self.param: str | None = _text(fields.get("param"))

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"job {self.job.id} {self.job.status}{code}: {self.message}"


class JobCancelledError(JobFailedError):
    """An asynchronous job was cancelled (refunded for what was not delivered)."""


class JobTimeoutError(ImagegateError, TimeoutError):
    """`wait(timeout=...)` gave up before the job ended; the job goes on (`.job`, its last state)."""

    def __init__(self, message: str, *, job: JobState) -> None:
        super().__init__(message)
        self.job = job


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


STATUS_ERRORS: Mapping[int, type[APIStatusError]] = MappingProxyType(
    {
        400: BadRequestError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
        422: UnprocessableEntityError,
        429: RateLimitError,
    }
)

INSUFFICIENT_QUOTA = "insufficient_quota"


def error_fields(body: Any) -> dict[str, Any]:
    """The `error` object of an OpenAI error body (or {} when the body has none)."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return dict(inner)
        if isinstance(inner, str):
            return {"message": inner}
    return {}


def parse_body(raw: bytes) -> Any:
    """JSON if the body is JSON, else the text (or None when empty)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """The wait the server asked for, in seconds, or None if it asked for none (or nonsense).

    `retry-after-ms`, else `Retry-After` as seconds or as an HTTP date (read against `now`).
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return float(raw_ms) / 1000.0
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return email.utils.mktime_tz(parsed) - now


def format_wait(seconds: float) -> str:
    """A wait as people read it, in whole seconds rounded up: 45s, 3m20s, 5h00m30s."""
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def make_status_error(
    status_code: int, headers: Mapping[str, str], raw_body: bytes, *, now: float | None = None
) -> APIStatusError:
    """The exception for an HTTP error answer: class by status (and code), fields from the body.

    With `now` (the client's clock), a Retry-After is kept as `.retry_after` and `.retry_at`.
    """
    body = parse_body(raw_body)
    fields = error_fields(body)
    code = fields.get("code")
    code = str(code) if code is not None else None
    message = fields.get("message") or (body if isinstance(body, str) and body else None)
    message = str(message or f"HTTP {status_code}")
    if status_code == 429 and code == INSUFFICIENT_QUOTA:
        cls: type[APIStatusError] = InsufficientQuotaError
    elif status_code >= 500:
        cls = InternalServerError
    else:
        cls = STATUS_ERRORS.get(status_code, APIStatusError)
    param = fields.get("param")
    error = cls(
        message,
        status_code=status_code,
        headers=headers,
        body=body,
        type=fields.get("type"),
        code=code,
        param=str(param) if param is not None else None,
    )
    if now is not None and (wait := retry_after(headers, now)) is not None and wait > 0:
        error.retry_after, error.retry_at = wait, now + wait
    return error
