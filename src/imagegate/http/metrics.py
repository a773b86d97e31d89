"""Prometheus metrics (`prometheus-client`), every name prefixed `imagegate_`.

- HTTP: requests and latency by method, route template and status (pure ASGI middleware).
- Images requests, from each request's usage record as it ends (flow/ports.py RequestObserver):
  requests and latency by endpoint, model, engine and status; images; tokens; what keys were
  charged and what channels cost the operator, in micro-dollars; rejections by error code (rate
  limits, quota, moderation...); upstream retries.
- Channels: attempts by outcome and each circuit's state, from the breaker's records (a wrapper
  around the CircuitBreaker port, so the flow is unchanged).
- Jobs by status, read from the database at scrape time (any replica's jobs).

Labels stay bounded: route templates, never raw paths; a model the registry does not know is
`other`; engines and channels are the operator's; no key ids.

Several worker processes (`serve --workers N`) write their values into the directory named by
PROMETHEUS_MULTIPROC_DIR (`serve` makes a fresh one), and a scrape of any worker reads them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.breakers.base import BreakerState, CircuitBreaker
from imagegate.storage.usage import UsageRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """This process's metrics; `registry` is what a scrape reads (all workers' in multiprocess mode)."""

    def __init__(self, knows_model: Callable[[str], bool], jobs: Callable[[], dict[str, int]]) -> None:
        shared = multiprocess()
        # In multiprocess mode the values live in files, not in a registry; each app (tests build
        # many per process) otherwise has a registry of its own.
        own = None if shared else CollectorRegistry(auto_describe=True)
        self.knows_model = knows_model  # the registry's: a model it does not serve is labelled "other"
        self.http_requests = Counter(
            "imagegate_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=own
        )
        self.http_latency = Histogram(
            "imagegate_http_request_duration_seconds",
            "Time to the end of the response.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        labels = ["endpoint", "model", "engine", "status"]
        self.requests = Counter("imagegate_image_requests", "Images requests ended.", labels, registry=own)
        self.latency = Histogram(
            "imagegate_image_request_duration_seconds",
            "Images requests' time from admission to settlement.",
            ["endpoint", "model", "engine"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.images = Counter("imagegate_images", "Images delivered.", ["model", "engine"], registry=own)
        self.tokens = Counter("imagegate_tokens", "Tokens billed.", ["model", "kind"], registry=own)
        self.charged = Counter(
            "imagegate_charged_microdollars",
            "What keys were charged (micro-dollars).",
            ["model"],
            registry=own,
        )
        self.upstream_cost = Counter(
            "imagegate_upstream_cost_microdollars",
            "What channels cost the operator, where priced (micro-dollars).",
            ["channel"],
            registry=own,
        )
        self.rejections = Counter(
            "imagegate_rejections",
            "Requests refused before any engine ran, by error code (rate_limit_exceeded, "
            "insufficient_quota, moderation_blocked...).",
            ["status", "code"],
            registry=own,
        )
        self.retries = Counter(
            "imagegate_upstream_retries", "Attempts beyond the first, by model.", ["model"], registry=own
        )
        self.attempts = Counter(
            "imagegate_channel_attempts", "Calls to upstream channels.", ["channel", "outcome"], registry=own
        )
        self.breaker = Gauge(
            "imagegate_channel_breaker_state",
            "Each channel's circuit as last recorded: 0 closed, 1 half-open, 2 open.",
            ["channel"],
            registry=own,
            multiprocess_mode="mostrecent",
        )
        # A labelled child per label values, kept: prometheus-client's labels() takes a lock and
        # converts every value (~2.4 us a call, nine calls an images request).
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        registry = own if own is not None else CollectorRegistry(auto_describe=True)
        if shared:
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(_JobsCollector(jobs))
        self.registry: CollectorRegistry = registry

    def at(self, metric: Counter | Gauge | Histogram, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per label values (they are bounded)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- flow/ports.py RequestObserver --------------------------------------------------------

    def ended(self, record: UsageRecord, prompt: str | None) -> None:  # noqa: ARG002 (never a label)
        model = record.model if record.model is not None and self.knows_model(record.model) else "other"
        engine = record.engine or "none"
        status = str(record.status)
        self.at(self.requests, record.endpoint, model, engine, status).inc()
        self.at(self.latency, record.endpoint, model, engine).observe(record.latency_ms / 1000)
        if record.images:
            self.at(self.images, model, engine).inc(record.images)
        for kind in ("text_in", "image_in", "image_out"):
            if value := getattr(record, kind):
                self.at(self.tokens, model, kind).inc(value)
        if record.cost_micros:
            self.at(self.charged, model).inc(record.cost_micros)
        if record.upstream_cost_micros and record.channel:
            self.at(self.upstream_cost, record.channel).inc(record.upstream_cost_micros)
        if record.engine is None and record.status >= 400:  # refused before any route was chosen
            self.at(self.rejections, status, record.error_code or "unknown").inc()
        if record.attempts > 1:
            self.at(self.retries, model).inc(record.attempts - 1)

    # -- channels -----------------------------------------------------------------------------

    def attempt(self, name: str, ok: bool, state: BreakerState) -> None:
        channel = name.removeprefix("channel:")  # the breaker's name for it (engines/registry.py)
        self.at(self.attempts, channel, "ok" if ok else "failed").inc()
        self.at(self.breaker, channel).set(BREAKER_STATES[state.state])


class _JobsCollector(Collector):
    """Jobs by status, from the database at scrape time."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self.count = count

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked: a scrape reads the database, registration must not

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("imagegate_jobs", "Asynchronous jobs by status.", labels=["status"])
        for status, count in sorted(self.count().items()):
            family.add_metric([status], count)
        yield family


class ObservedBreaker:
    """A CircuitBreaker that reports each recorded outcome and the state it leads to."""

    def __init__(self, inner: CircuitBreaker, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def allow(self, name: str, now: float) -> bool:
        return await self.inner.allow(name, now)

    async def record(self, name: str, ok: bool, now: float) -> BreakerState:
        state = await self.inner.record(name, ok, now)
        self.metrics.attempt(name, ok, state)
        return state

    async def state(self, name: str, now: float) -> BreakerState:
        return await self.inner.state(name, now)

    async def reset(self, name: str) -> None:
        await self.inner.reset(name)

    async def close(self) -> None:
        await self.inner.close()


class HttpMetrics:
    """Pure ASGI middleware: every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            metrics = self.metrics
            metrics.at(metrics.http_requests, method, template, str(status)).inc()
            metrics.at(metrics.http_latency, method, template).observe(time.perf_counter() - started)
