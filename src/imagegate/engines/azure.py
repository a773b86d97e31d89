"""Azure OpenAI: OpenAI's images API served from a resource of the operator's own.

From Microsoft's references (read 2026-12-03):
https://learn.microsoft.com/azure/ai-foundry/openai/how-to/dall-e and
https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle (the v1 API).

- `POST {base}/openai/deployments/{deployment}/images/generations|edits?api-version={version}`,
  header `api-key`, where base is the resource's `https://{resource}.openai.azure.com` (so a channel
  must name it: there is no public endpoint). Options: `deployment` (default: the upstream model
  name) and `api_version` (default 2025-04-01-preview, the version that brought the gpt-image
  models; gpt-image-2 answers on it too).
- `api_version=v1`: the v1 API, `POST {base}/openai/v1/images/generations|edits` with the
  deployment as the body's `model`, and no api-version.
- The body is OpenAI's. gpt-image models answer base64 only (no `response_format`), write PNG or
  JPEG (no WebP), stream as OpenAI's do and report OpenAI's `usage`. Edits are multipart only
  (`image[]`, `mask`), whichever way the client sent them.
- A prompt or image the content filter refuses: 400 with error code `contentFilter` (the images
  guide) or `content_filter` with inner error `ResponsibleAIPolicyViolation` (the other APIs):
  answered as OpenAI's 400 `moderation_blocked`, in a stream's error event too.
- The key is checked with `GET {base}/openai/models?api-version=...` (v1: `/openai/v1/models`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp

from imagegate.domain import ImageJob
from imagegate.engines.openai_wire import scrub
from imagegate.engines.upstream import UpstreamConfig, UpstreamEngine
from imagegate.errors import InvalidRequest, ModerationBlocked, UpstreamError

DEFAULT_API_VERSION = "2025-04-01-preview"
V1 = "v1"
OPTIONS = ("deployment", "api_version")
CONTENT_FILTERED = frozenset({"contentfilter", "content_filter", "responsibleaipolicyviolation"})


def _root(config: UpstreamConfig) -> str:
    return config.base_url.rstrip("/") + "/openai"


def _v1(config: UpstreamConfig) -> bool:
    return str(config.options.get("api_version") or "") == V1


def _version(config: UpstreamConfig) -> str:
    return quote(str(config.options.get("api_version") or DEFAULT_API_VERSION), safe="")


def deployment(config: UpstreamConfig, model: str) -> str:
    """The deployment that serves `model` (the client's name): the channel's option, else the
    upstream model name (Azure's portal suggests naming a deployment after its model)."""
    return str(config.options.get("deployment") or config.upstream_model(model))


def url(config: UpstreamConfig, job: ImageJob) -> str:
    operation = "edits" if job.kind == "edit" else "generations"
    if _v1(config):
        return f"{_root(config)}/v1/images/{operation}"
    name = quote(deployment(config, job.model), safe="")
    return f"{_root(config)}/deployments/{name}/images/{operation}?api-version={_version(config)}"


def body(config: UpstreamConfig, job: ImageJob) -> dict[str, Any]:
    """The client's OpenAI parameters; the model is the deployment on the v1 API. A JSON edit's
    image references are dropped: the images go as files (Azure's edits are multipart only)."""
    model = deployment(config, job.model) if _v1(config) else config.upstream_model(job.model)
    fields = {k: v for k, v in job.passthrough.items() if k not in ("images", "mask")}
    return {**fields, "model": model}


def key_check_url(config: UpstreamConfig) -> str:
    if _v1(config):
        return f"{_root(config)}/v1/models"
    return f"{_root(config)}/models?api-version={_version(config)}"


def client_error(answer: Any) -> dict[str, Any] | None:
    """Azure's error body as OpenAI's: a content filter's refusal is `moderation_blocked`."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None
    inner = error.get("innererror") or error.get("inner_error") or {}
    codes = {str(error.get("code") or "").lower()}
    if isinstance(inner, dict):
        codes.add(str(inner.get("code") or "").lower())
    message = str(error.get("message") or "Azure OpenAI refused the request.")
    if codes & CONTENT_FILTERED:
        return ModerationBlocked(message).body()
    param = error.get("param")
    code = error.get("code")
    return InvalidRequest(
        message, param=str(param) if param else None, code=str(code) if code else None
    ).body()


class AzureEngine(UpstreamEngine):
    kind = "Azure OpenAI"

    def _url(self, job: ImageJob) -> str:
        return url(self.channel, job)

    def _headers(self) -> dict[str, str]:
        return {"api-key": self.channel.api_key}

    def _body(self, job: ImageJob) -> dict[str, Any]:
        return body(self.channel, job)

    async def _send(self, job: ImageJob) -> aiohttp.ClientResponse:
        # An edit is always multipart: the base class sends a JSON edit as JSON.
        return await super()._send(replace(job, relay_json=False) if job.kind == "edit" else job)

    def key_check(self) -> tuple[str, dict[str, str]]:
        return key_check_url(self.channel), self._headers()

    def _client_error(self, status: int, body: Any) -> dict[str, Any] | None:  # noqa: ARG002
        mapped = client_error(body)
        return None if mapped is None else scrub(mapped, self.channel.api_key)

    def _error(
        self, what: str, *, retryable: bool, body: dict[str, Any] | None = None, maybe_billed: bool = True
    ) -> UpstreamError:
        # A stream's error event from the content filter (the image it made was filtered) is the
        # client's 400 `moderation_blocked`, as the same refusal before the stream would be.
        mapped = client_error(body)
        if mapped is not None and mapped["error"]["code"] == ModerationBlocked.default_code:
            return UpstreamError(
                f"The upstream provider {what}.",
                status=400,
                retryable=False,
                channel=self.channel.name,
                upstream_body=mapped,
                maybe_billed=maybe_billed,
            )
        return super()._error(what, retryable=retryable, body=body, maybe_billed=maybe_billed)
