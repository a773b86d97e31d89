"""The composition root: `create_app(settings)` builds everything in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from imagegate import __version__
from imagegate.accounts import Accounts
from imagegate.breakers import BreakerConfig, build_circuit_breaker
from imagegate.channels import Channels
from imagegate.clock import Clock, FrozenClock, SystemClock
from imagegate.config import Settings
from imagegate.engines.fetch import client_fetcher, webhook_sender
from imagegate.engines.registry import build_registry
from imagegate.engines.upstream import new_session
from imagegate.flow.jobs import Jobs
from imagegate.flow.maintenance import Maintenance
from imagegate.flow.ports import RequestObserver
from imagegate.flow.prepare import Preparer
from imagegate.flow.route import RetryPolicy, Router
from imagegate.flow.run import ImageFlow
from imagegate.http import errors, wire
from imagegate.http.logs import AccessLog, Observers
from imagegate.http.metrics import HttpMetrics, Metrics, ObservedBreaker
from imagegate.http.middleware import BodyLimit, RequestId
from imagegate.http.routes import account, admin, console, docs, files, health, history, images, models
from imagegate.http.routes import jobs as jobs_routes
from imagegate.http.routes import metrics as metrics_routes
from imagegate.images.tokens import count_text_tokens
from imagegate.limits import build_rate_limiter
from imagegate.limits.failures import build_failed_attempts
from imagegate.provenance import Sealer, load_credentials
from imagegate.storage.sessions import SessionRepo
from imagegate.storage.signing import UrlSigner, load_or_create_secret
from imagegate.storage.stores import Stores, job_store, open_stores, request_stores

log = logging.getLogger("imagegate")


def build_flow(
    settings: Settings,
    clock: Clock,
    stores: Stores,
    upstream: aiohttp.ClientSession,
    metrics: Metrics | None = None,
) -> tuple[ImageFlow, Maintenance]:
    """The request path over `stores`, and the background work that keeps its routes current."""
    secret = settings.url_secret or load_or_create_secret(settings.data_dir / "url-secret")
    breaker = build_circuit_breaker(
        settings.redis_url,
        BreakerConfig(
            failure_threshold=settings.breaker_failure_threshold,
            window_s=settings.breaker_window_s,
            failure_rate=settings.breaker_failure_rate,
            min_requests=settings.breaker_min_requests,
            cooldown_s=settings.breaker_cooldown_s,
        ),
        prefix=settings.redis_prefix,
        shared_path=settings.shared_state_path,
    )
    if metrics is not None:
        breaker = ObservedBreaker(breaker, metrics)
    policy = RetryPolicy(
        max_attempts=settings.upstream_max_attempts,
        deadline_s=settings.upstream_deadline_s,
        backoff_s=settings.upstream_backoff_s,
    )
    flow = ImageFlow(
        settings=settings,
        stores=request_stores(stores),
        signer=UrlSigner(secret, settings.url_ttl_s, clock, direct=stores.images.presigned_url),
        registry=build_registry(settings),  # the channels join at start-up (Maintenance.reload_channels)
        limiter=build_rate_limiter(
            settings.redis_url,
            prefix=settings.redis_prefix,
            lease_ttl_s=settings.reservation_timeout_s,
            shared_path=settings.shared_state_path,
        ),
        router=Router(breaker, clock, policy, on_disable=lambda c, r: maintenance.disable_channel(c, r)),
        prepare=Preparer(settings, client_fetcher(settings)),
        clock=clock,
        sealer=build_sealer(settings),
        observer=_observer(settings, metrics),
    )
    maintenance = Maintenance(settings, stores, flow, upstream)
    return flow, maintenance


def _observer(settings: Settings, metrics: Metrics | None) -> RequestObserver | None:
    """Who hears of each request's end: the metrics, and the access log when it is written."""
    observers: list[RequestObserver] = [metrics] if metrics is not None else []
    if settings.log_format == "json" or settings.access_log:
        observers.append(AccessLog(settings.log_prompts))
    return Observers(*observers) if observers else None


def build_sealer(settings: Settings) -> Sealer | None:
    """The signer of the images' provenance manifests; None when the operator turned it off."""
    if not settings.provenance:
        return None
    credentials = load_credentials(settings.data_dir, settings.provenance_cert, settings.provenance_key)
    return Sealer(credentials, __version__)


@contextlib.asynccontextmanager
async def _running(work: Callable[[], Coroutine[Any, Any, None]], copies: int) -> AsyncIterator[None]:
    """`copies` tasks of `work` for the server's life (jobs' runners, webhooks' delivery)."""
    tasks = [asyncio.create_task(work()) for _ in range(copies)]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    clock = clock or (FrozenClock(settings.frozen_time) if settings.frozen_time else SystemClock())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            new_session() as upstream,  # the channels (engines/upstream.py)
        ):
            stores = open_stores(settings, clock)
            flow, maintenance = build_flow(settings, clock, stores, upstream, app.state.metrics)
            app.state.flow = flow
            app.state.stores = stores
            app.state.maintenance = maintenance
            app.state.settings = settings
            app.state.clock = clock
            app.state.accounts = Accounts(settings, stores.keys, stores.ledger, stores.usage)
            app.state.failed_attempts = (
                build_failed_attempts(
                    settings.redis_url,
                    max_failures=settings.auth_max_failures,
                    window_s=settings.auth_failure_window_s,
                    prefix=settings.redis_prefix,
                    shared_path=settings.shared_state_path,
                )
                if settings.auth_max_failures
                else None
            )
            app.state.channels = Channels(stores.channels)
            app.state.console_sessions = SessionRepo(stores.sql, clock, settings.console_session_ttl_s)
            app.state.started_at = clock.now()
            jobs = Jobs(flow, job_store(stores), webhook_sender(settings), settings, clock)
            app.state.jobs = jobs
            await maintenance.reload_channels()
            _log_routes(flow)
            # bpe-openai builds its vocabularies on first use (~0.5 s): not on a request.
            await anyio.to_thread.run_sync(count_text_tokens, "warm up")
            if all(r.engine.name == "placeholder" for r in flow.registry.routes()):
                log.warning(
                    "no upstream channel and no local model configured: every model is served "
                    "by the offline placeholder renderer"
                )
            try:
                async with (
                    maintenance.running(),
                    _running(jobs.deliver_forever, 1),
                    _running(jobs.run_forever, settings.job_runners),
                ):
                    yield
            finally:
                await flow.limiter.close()
                if app.state.failed_attempts is not None:
                    await app.state.failed_attempts.close()
                await flow.router.breaker.close()
                await stores.drained()
                stores.close()

    app = FastAPI(
        title="imagegate",
        version=__version__,
        summary="OpenAI-compatible image generation gateway",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are http/routes/docs.py: their assets served here, not from a CDN
        redoc_url=None,
    )
    errors.install(app)
    for module in (
        images,
        jobs_routes,
        history,
        files,
        models,
        account,
        admin,
        health,
        docs,
        metrics_routes,
        console,
    ):
        app.include_router(module.router)
    app.state.metrics = None
    if settings.metrics != "off":
        app.state.metrics = Metrics(
            knows_model=lambda model: app.state.flow.registry.knows(model),
            jobs=lambda: app.state.stores.jobs.counts(),  # on the scrape's worker thread
        )
        app.add_middleware(HttpMetrics, metrics=app.state.metrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestId)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _log_routes(flow: ImageFlow) -> None:
    by_engine: dict[str, list[str]] = {}
    for route in flow.registry.routes():
        by_engine.setdefault(f"{route.engine.name} ({route.engine.describe()})", []).append(route.model)
    for engine, names in by_engine.items():
        log.info("%s -> %s", ", ".join(names), engine)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request bodies that the flow parses itself."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes, summary=app.summary)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in wire.REQUEST_SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    doc["components"]["securitySchemes"] = {"ApiKeyAuth": {"type": "http", "scheme": "bearer"}}
    doc["security"] = [{"ApiKeyAuth": []}]
    app.openapi_schema = doc
    return doc
