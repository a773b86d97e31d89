"""One request's state, handed to every stage of the path (flow/run.py) and to its settlement.

Stages fill it in order: `prepared` (validated job, routes, usage), `decision` (rate limits)
and `reservation` (credits), then what the engine delivered. The settlement (flow/settlement.py)
reads it to charge, record and release, whichever way the request ended.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from imagegate.domain import FinalImage, ImageJob, PartialImage
from imagegate.engines.adapt import NOTES_HEADER
from imagegate.errors import GatewayError
from imagegate.flow.request import ImageRequest, ResponseOptions
from imagegate.flow.route import RouteReport
from imagegate.images.tokens import PARTIAL_IMAGE_TOKENS, Usage
from imagegate.limits.base import Decision
from imagegate.pricing import ModelPrice
from imagegate.storage.keys import ApiKey
from imagegate.storage.ledger import Reservation


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    base_url: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that passed every check and is ready for its engine."""

    job: ImageJob
    options: ResponseOptions
    routes: list[Any]  # engines.registry.Route, in the registry's order
    price: ModelPrice  # what the key pays per token (or image), before its multiplier
    usage: Usage  # computed with our token tables from the resolved parameters
    max_usage: Usage  # the most an engine may report (quality 'auto' may become 'high')


@dataclass
class RequestState:
    key: ApiKey
    ctx: RequestContext
    request: ImageRequest
    started: float = field(default_factory=time.perf_counter)
    prepared: Prepared | None = None
    decision: Decision | None = None  # what rate limiting granted (its lease is released at the end)
    reservation: Reservation | None = None  # the held maximum cost (settled or refunded at the end)
    multiplier_ppm: int = 1_000_000  # the key's price multiplier
    claimed: bool = False  # this request holds its Idempotency-Key's claim
    replayed: dict[str, Any] | None = None  # the claim's stored response: nothing to run
    report: RouteReport = field(default_factory=RouteReport)
    engine_done: bool = False  # the engine ran to its end (a cut before that: the provider may bill)
    usage: Usage = field(default_factory=Usage)  # of the delivered images
    reported: bool = False  # `usage` is the engine's own (an upstream's numbers)
    images: int = 0  # delivered images
    open_partials: int = 0  # partial images delivered of the image being made (streams)
    sent: bool = False  # a stream event went out: failures become `error` events
    error: GatewayError | None = None  # what ended a stream after it started
    settled: bool = False  # the final transaction committed
    cost: int = 0  # charged to the key
    upstream_cost: int | None = None  # what the channel costs the operator, when priced
    stored_response: dict[str, Any] | None = None  # for the Idempotency-Key, once answered
    adapted: tuple[str, ...] = ()  # how the request was adapted to its provider (engines/adapt.py)
    # Told the count of delivered images after each (an async job records its progress).
    on_image: Callable[[int], Awaitable[None]] | None = None
    outputs: list[dict[str, str]] = field(default_factory=list)  # streamed images kept: sha256, ext
    handed_off: bool = False  # became a queued job: its run settles the reservation (flow/jobs.py)

    def note(self, event: FinalImage | PartialImage) -> None:
        if event.adapted:
            self.adapted = event.adapted

    def adaptation_headers(self) -> dict[str, str]:
        return {NOTES_HEADER: "; ".join(self.adapted)} if self.adapted else {}

    @property
    def job(self) -> ImageJob:
        assert self.prepared is not None, "prepared before the engine runs"
        return self.prepared.job

    def deliver(self, final: FinalImage, usage: Usage | None = None) -> None:
        """Count a delivered image and its usage: the engine's own when it reports one, else ours."""
        if final.usage is not None:
            self.reported = True
            self.usage = self.usage + final.usage
        elif usage is not None:
            self.usage = self.usage + usage
        self.images += 1
        self.open_partials = 0

    def share_of_usage(self) -> Usage:
        """A streamed image's share of our own usage: input tokens on the first, so they add up."""
        assert self.prepared is not None
        usage, first = self.prepared.usage, self.images == 0
        return Usage(
            text_in=usage.text_in if first else 0,
            image_in=usage.image_in if first else 0,
            image_out=usage.image_out // self.prepared.job.n,
        )

    def delivered_usage(self) -> Usage:
        """What the client received: the images' usage, plus the partial images of one cut short
        (README: +100 output tokens each), with the prompt's input tokens when nothing else
        carried them."""
        usage = self.usage
        if self.open_partials and self.prepared is not None:
            usage = usage + Usage(image_out=PARTIAL_IMAGE_TOKENS * self.open_partials)
            if self.images == 0 and not self.reported:
                usage = usage + Usage(
                    text_in=self.prepared.usage.text_in, image_in=self.prepared.usage.image_in
                )
        return usage


@dataclass
class Outcome:
    """A JSON body or a stream of SSE events, with the headers to send."""

    body: dict[str, Any] | None = None
    events: AsyncIterator[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
