"""The gateway's error tree. HTTP-free: `http/errors.py` maps each class to a status.

    GatewayError                      server_error
    ├── InvalidRequest                400 invalid_request_error
    │   ├── UnknownParameter          code unknown_parameter
    │   ├── MissingParameter          code missing_required_parameter
    │   ├── InvalidValue              code invalid_value
    │   ├── InvalidType               code invalid_type
    │   ├── InvalidImage              code invalid_image_file
    │   └── UnsupportedMimetype       code unsupported_file_mimetype
    ├── ModerationBlocked             400 image_generation_user_error / moderation_blocked
    ├── AuthenticationFailed          401 invalid_api_key
    ├── PermissionDenied              403
    │   └── SignatureInvalid          403 (tampered or expired image URL)
    ├── NotFound                      404
    │   └── ModelNotFound             code model_not_found
    ├── Conflict                      409 (Idempotency-Key reused or still running)
    ├── PayloadTooLarge               413
    ├── RateLimited                   429 rate_limit_exceeded (+ Retry-After)
    ├── InsufficientQuota             429 insufficient_quota
    ├── EngineFailed                  500: an engine could not make the image (`retryable`: the
    │   │                             router fails over to the next route, for any engine)
    │   └── UpstreamError             a provider's: its 4xx relayed as is; 502 for its failures
    ├── NoRouteAvailable              503 (every channel for the model failed or is open)
    └── ServiceUnavailable            503 (a backing store is unreachable)

Every error carries the four fields of OpenAI's error body: message, type, param, code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        # Extra keys placed inside the "error" object (e.g. moderation_details).
        self.extra = extra or {}
        # Response headers that go with the error (Retry-After, x-ratelimit-*).
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error body: {"error": {"message", "type", "param", "code", ...}}."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}


class InvalidRequest(GatewayError):
    type = "invalid_request_error"


class UnknownParameter(InvalidRequest):
    default_code = "unknown_parameter"

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown parameter: '{name}'.", param=name)


class MissingParameter(InvalidRequest):
    default_code = "missing_required_parameter"

    def __init__(self, name: str) -> None:
        super().__init__(f"Missing required parameter: '{name}'.", param=name)


class InvalidValue(InvalidRequest):
    default_code = "invalid_value"


class InvalidType(InvalidRequest):
    default_code = "invalid_type"


class InvalidImage(InvalidRequest):
    default_code = "invalid_image_file"


class UnsupportedMimetype(InvalidRequest):
    default_code = "unsupported_file_mimetype"


class ModerationBlocked(GatewayError):
    type = "image_generation_user_error"
    default_code = "moderation_blocked"


class AuthenticationFailed(GatewayError):
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    type = "invalid_request_error"
    default_code = "permission_denied"


class SignatureInvalid(PermissionDenied):
    default_code = "invalid_signature"


class Conflict(GatewayError):
    type = "invalid_request_error"
    default_code = "conflict"


class RateLimited(GatewayError):
    type = "requests"
    default_code = "rate_limit_exceeded"


class InsufficientQuota(GatewayError):
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class EngineFailed(GatewayError):
    """An engine could not make the image: the one failure type every engine raises.

    `retryable`: another route, or this one later, may succeed (the router fails over on it);
    `status`: a 4xx that is not retryable is the client's fault and is answered as such;
    `maybe_billed`: the work may have been charged for anyway (a provider had the request);
    `disable_reason`: the route should be taken out of service (a rejected key, no balance).
    """

    type = "server_error"
    default_code = "engine_error"
    failure_status: ClassVar[int] = 500  # what a client sees for a failure that is not its fault

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int = 500,
        retry_after_s: float | None = None,
        maybe_billed: bool = False,
        disable_reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.maybe_billed = maybe_billed
        self.disable_reason = disable_reason

    @property
    def client_status(self) -> int:
        return self.status if 400 <= self.status < 500 and not self.retryable else self.failure_status


class UpstreamError(EngineFailed):
    """A provider failed or refused. A 4xx from the provider is the client's fault and is
    relayed with the provider's status and body; anything else is a 502."""

    type = "upstream_error"
    default_code = "upstream_error"
    failure_status = 502

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retryable: bool,
        channel: str,
        upstream_body: dict[str, Any] | None = None,
        disable_reason: str | None = None,
        retry_after_s: float | None = None,
        maybe_billed: bool = False,
    ) -> None:
        # maybe_billed: the provider got the whole request and may have made (and charged for) the
        # image: a timeout or broken connection after sending, a malformed or cut-short answer.
        super().__init__(
            message,
            retryable=retryable,
            status=status,
            retry_after_s=retry_after_s,
            maybe_billed=maybe_billed,
            disable_reason=disable_reason,
        )
        self.channel = channel  # for logs and the operator; never shown to clients
        self.upstream_body = upstream_body

    def body(self) -> dict[str, Any]:
        if self.upstream_body is not None and self.client_status < 500:
            return self.upstream_body
        return super().body()


class NoRouteAvailable(GatewayError):
    type = "server_error"
    default_code = "upstream_unavailable"


class ServiceUnavailable(GatewayError):
    type = "server_error"
    default_code = "service_unavailable"


class NotFound(GatewayError):
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class PayloadTooLarge(GatewayError):
    type = "invalid_request_error"
    default_code = "request_too_large"


def supported(values: tuple[str, ...] | list[str]) -> str:
    """Render OpenAI's "'a', 'b', and 'c'" list used in invalid_value messages."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def invalid_choice(param: str, value: object, choices: tuple[str, ...] | list[str]) -> InvalidValue:
    """OpenAI's wording for an enum outside its set."""
    return InvalidValue(f"Invalid value: '{value}'. Supported values are: {supported(choices)}.", param=param)


# The HTTP status of each error class (the first match along the class's MRO wins).
STATUS: dict[type[GatewayError], int] = {
    InvalidRequest: 400,
    ModerationBlocked: 400,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    RateLimited: 429,
    InsufficientQuota: 429,
    EngineFailed: 500,
    NoRouteAvailable: 503,
    ServiceUnavailable: 503,
    GatewayError: 500,
}


def status_of(exc: GatewayError) -> int:
    if isinstance(exc, EngineFailed):
        return exc.client_status
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500
