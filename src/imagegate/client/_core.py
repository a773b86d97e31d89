"""The SDK's logic, once, as plans (see `_plan.py`): pricing, cache, retries, results, monitor.

`Core` holds a client's configuration and state (the price table it fetched, its cache and
monitor) and builds the plans that `Client` and `AsyncClient` run with their own drivers.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from imagegate import __version__
from imagegate.client._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    JobFailedError,
    make_status_error,
)
from imagegate.client._plan import Env, Failure, Observer, Plan, Reply, Request, send
from imagegate.client._requests import Call, input_sizes, to_request
from imagegate.client._retry import RetryPolicy
from imagegate.client._types import ImageResult, Usage, image_from_item
from imagegate.client.cache import ImageCache, cache_key
from imagegate.client.monitor import CallRecord, Monitor, truncate_prompt
from imagegate.client.pricing import DEFAULT_PRICES, PriceTable, load_tokenizer

ECHOED = ("size", "quality", "background", "output_format", "seed")


def new_idempotency_key() -> str:
    """A fresh key for one logical request (reused by all of its retries)."""
    return f"ig-{uuid.uuid4().hex}"


def same_origin(url: str, base_url: str) -> bool:
    """Whether `url` has the scheme, host and port of `base_url`."""
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def error_code(error: APIError) -> str:
    """A short code for a failure: the API's `code`, else timeout/connection_error/the class."""
    if isinstance(error, APIStatusError):
        return error.code or f"http_{error.status_code}"
    if isinstance(error, JobFailedError):
        return error.code or f"job_{error.job.status}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    if isinstance(error, APIConnectionError):
        return "connection_error"
    return type(error).__name__


def decode_json(reply: Reply) -> dict[str, Any]:
    """The JSON object of a successful answer; APIError if it is not one."""
    try:
        body = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(
            "The server answered with a body that is not JSON.", request_id=reply.headers.get("x-request-id")
        ) from exc
    if not isinstance(body, dict):
        raise APIError("The server answered with JSON that is not an object.")
    return body


class Core:
    """Configuration, state and plan builders shared by the sync and async clients."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        policy: RetryPolicy,
        env: Env,
        cache: ImageCache | None,
        monitor: Monitor,
        pricing: PriceTable | None,
        default_headers: Mapping[str, str],
        flavour: str,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.policy = policy
        self.env = env
        self.cache = cache
        self.monitor = monitor
        self.default_headers = dict(default_headers)
        self.flavour = flavour
        self._pricing = pricing  # None until fetched (when the client asked for "auto")
        self._tokenizer: Callable[[str], int] | None = None

    # -- requests ---------------------------------------------------------------------------

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """The headers of every request to the API (plus an Idempotency-Key for image calls)."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"imagegate-python/{__version__} ({self.flavour})",
            **self.default_headers,
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def count_tokens(self, text: str) -> int:
        """Prompt tokens, with the o200k tokenizer if installed (loaded once per client)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer()
        return self._tokenizer(text)

    # -- plans ------------------------------------------------------------------------------

    def price_table(self) -> Plan[PriceTable]:
        """The server's price table (GET /v1/pricing, fetched once), else the default one."""
        if self._pricing is not None:
            return self._pricing
        outcome = yield Request("GET", "pricing", self.headers())
        if isinstance(outcome, Failure) or not isinstance(outcome, Reply):
            return DEFAULT_PRICES  # not remembered: the next call asks again
        if outcome.status == 200:
            try:
                self._pricing = PriceTable.from_json(json.loads(outcome.body))
            except (ValueError, TypeError, AttributeError):
                self._pricing = DEFAULT_PRICES
        elif outcome.status in (404, 405):  # not imagegate (or an older one): use the default
            self._pricing = DEFAULT_PRICES
        return self._pricing or DEFAULT_PRICES

    def models(self) -> Plan[list[dict[str, Any]]]:
        """GET /v1/models: the `data` list."""
        reply = yield from send(Request("GET", "models", self.headers()), self.policy, self.env)
        data = decode_json(reply).get("data")
        return list(data) if isinstance(data, list) else []

    def estimate(self, call: Call, partial_images: int = 0) -> Plan[int]:
        """µ$ the call should cost, by the price table in force."""
        table = yield from self.price_table()
        return self._estimate(table, call, call.n, partial_images)

    def images(self, call: Call, observe: Observer | None = None) -> Plan[ImageResult]:
        """Run a generate/edit call: cache lookup, retried request, result, cache fill, record."""
        started = self.env.clock()
        table = yield from self.price_table()
        key = cache_key(call.cache_material()) if self.cache is not None else None
        if self.cache is not None and key is not None:
            entry = self.cache.get(key)
            if entry is not None:
                result = self.result(call, entry.body, table, {}, cached=True, cost=entry.cost_micro_usd)
                self.record(call, started, result=result, saved=entry.cost_micro_usd, cost=0)
                return result
        request = to_request(call, self.headers(call.idempotency_key or new_idempotency_key()))
        try:
            reply = yield from send(request, self.policy, self.env, observe)
            body = decode_json(reply)
            yield from self.inline_urls(body)
            result = self.result(call, body, table, reply.headers)
        except APIError as exc:
            self.record(call, started, error=exc)
            raise
        if self.cache is not None and key is not None:
            try:
                self.cache.put(key, body, result.cost_micro_usd)
            except OSError:
                pass  # a full or read-only disk must not fail a call that was paid for
        self.record(call, started, result=result)
        return result

    def inline_urls(self, body: dict[str, Any]) -> Plan[None]:
        """Download images the server sent as URLs only, so every Image has bytes."""
        for item in body.get("data") or []:
            if isinstance(item, dict) and not item.get("b64_json") and item.get("url"):
                url = str(item["url"])
                # The key goes only to the API's own origin, never to a third-party image host.
                outcome = yield Request("GET", url, self.headers() if same_origin(url, self.base_url) else {})
                if isinstance(outcome, Failure) or outcome is None:
                    raise APIConnectionError(
                        f"Could not download {url}: {outcome.message if outcome else 'no answer'}"
                    )
                if outcome.status >= 400:
                    raise make_status_error(outcome.status, outcome.headers, outcome.body)
                item["b64_json"] = base64.b64encode(outcome.body).decode("ascii")

    # -- results, cost and records ----------------------------------------------------------

    def result(
        self,
        call: Call,
        body: Mapping[str, Any],
        table: PriceTable,
        headers: Mapping[str, str],
        *,
        cached: bool = False,
        cost: int | None = None,
    ) -> ImageResult:
        """An ImageResult from a response body (priced from its usage unless `cost` is given)."""
        data = body.get("data")
        if not isinstance(data, list):
            raise APIError("The server's answer has no 'data' list.", request_id=headers.get("x-request-id"))
        echoed = {name: body.get(name) for name in ECHOED}
        images = tuple(
            image
            for i, item in enumerate(data)
            if isinstance(item, Mapping)
            if (image := image_from_item(item, i, echoed)) is not None
        )
        usage = Usage.from_json(body.get("usage"))
        estimated = False
        if cost is None:
            cost, estimated = self.cost_of(table, call, usage, echoed, len(images))
        return ImageResult(
            images=images,
            prompt=call.prompt,
            model=call.model,
            params=dict(call.params),
            created=body.get("created") if isinstance(body.get("created"), int) else None,
            size=echoed["size"] or call.params.get("size"),
            quality=echoed["quality"] or call.params.get("quality"),
            background=echoed["background"] or call.params.get("background"),
            output_format=echoed["output_format"] or call.params.get("output_format"),
            seed=echoed["seed"] if isinstance(echoed["seed"], int) else None,
            usage=usage,
            cost_micro_usd=cost,
            cost_estimated=estimated,
            cached=cached,
            request_id=headers.get("x-request-id"),
        )

    def cost_of(
        self, table: PriceTable, call: Call, usage: Usage | None, echoed: Mapping[str, Any], n: int
    ) -> tuple[int, bool]:
        """(µ$, estimated?) of a finished call: from `usage` if the server sent it."""
        quality = echoed.get("quality") or call.params.get("quality")
        size = echoed.get("size") or call.params.get("size")
        try:
            if usage is not None and (usage.input_tokens or usage.output_tokens):
                text_in, image_in = usage.text_tokens, usage.image_tokens
                if text_in + image_in == 0:
                    text_in = usage.input_tokens
                micro = table.usage_cost(
                    call.model,
                    text_in=text_in,
                    image_in=image_in,
                    image_out=usage.output_tokens,
                    quality=quality,
                    size=size,
                    n=n,
                )
                return micro, False
            return self._estimate(table, call, n, 0, quality=quality, size=size), True
        except ValueError:  # a size or quality this table cannot price
            return 0, True

    def _estimate(
        self,
        table: PriceTable,
        call: Call,
        n: int,
        partial_images: int,
        *,
        quality: str | None = None,
        size: str | None = None,
    ) -> int:
        return table.estimate(
            model=call.model,
            quality=quality or call.params.get("quality"),
            size=size or call.params.get("size"),
            n=n,
            partial_images=partial_images,
            prompt=call.prompt,
            input_sizes=input_sizes(call),
            high_fidelity=call.params.get("input_fidelity") == "high",
            count_tokens=self.count_tokens,
        )

    def record(
        self,
        call: Call,
        started: float,
        *,
        kind: str | None = None,
        result: ImageResult | None = None,
        error: APIError | None = None,
        saved: int = 0,
        cost: int | None = None,
        images: int | None = None,
    ) -> None:
        """Add one CallRecord to the monitor."""
        status = error.status_code if isinstance(error, APIStatusError) else None
        code = error_code(error) if error is not None else None
        self.monitor.record(
            CallRecord(
                timestamp=started,
                kind=kind or call.kind,
                model=call.model,
                prompt=truncate_prompt(call.prompt),
                params=dict(call.params),
                latency_s=max(0.0, self.env.clock() - started),
                cost_micro_usd=cost if cost is not None else (result.cost_micro_usd if result else 0),
                success=error is None,
                error_code=code,
                status_code=status,
                cache_hit=bool(result and result.cached),
                saved_micro_usd=saved,
                images=images if images is not None else (len(result) if result else 0),
                request_id=(result.request_id if result else error.request_id if error else None),
            )
        )
