"""Asynchronous jobs: `Prefer: respond-async` on generations and edits.

submit   the same admission as a synchronous request (auth, validation, moderation, rate
         limits, reservation) before the 202, so an accepted job is paid for; its uploads kept
         as blobs; a row `queued`. The reservation stays held (for `job_timeout_s`); the
         submission takes no concurrency slot.
run      any replica's runners claim the oldest queued job (a conditional UPDATE), take a
         concurrency slot of its key (else it waits its turn), and run it through the
         synchronous path (prepare -> route -> engine -> store -> Settlement), renewing the
         job's lease; the result names its blobs. A job whose replica died is claimed again
         when its lease passes: its reservation is settled once, whoever finishes it.
cancel   a queued job ends at once, refunded in full; a running one is stopped by its runner
         within a third of the lease, refunded for what was not delivered (all of it).
webhook  a job that ended is POSTed to its `webhook_url`, signed per Standard Webhooks
         (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 with the key's
         secret), retried with backoff, under the same address guards as image URLs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.engines.fetch import Fetcher, FetchError, is_http_url
from imagegate.errors import GatewayError, InvalidValue, NotFound
from imagegate.flow import idempotency, rate_limit
from imagegate.flow.ports import JobStore
from imagegate.flow.request import ImageRequest, Upload
from imagegate.flow.run import ImageFlow
from imagegate.flow.settlement import Settlement
from imagegate.flow.state import RequestContext, RequestState
from imagegate.images.encode import MEDIA_TYPES, sniff_format
from imagegate.limits.base import Decision, Limits
from imagegate.payload import Payload
from imagegate.storage import bounds
from imagegate.storage.jobs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    DuplicateJob,
    Job,
    new_job_id,
)
from imagegate.storage.keys import ApiKey
from imagegate.storage.ledger import Reservation

log = logging.getLogger("imagegate.jobs")
MAX_LIST = 100


@dataclass
class Jobs:
    flow: ImageFlow
    store: JobStore
    sender: Fetcher  # webhooks: a client's URL, under the image URLs' guards
    settings: Settings
    clock: Clock
    worker: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    )
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _running: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    _cancelling: set[str] = field(default_factory=set)

    # --- the API ---------------------------------------------------------------------------

    async def submit(
        self, request: ImageRequest, key: ApiKey, ctx: RequestContext, webhook_url: str | None
    ) -> dict[str, Any]:
        if ctx.idempotency_key:
            existing = await self.store.by_idempotency_key(key.id, ctx.idempotency_key)
            if existing is not None:
                return await self.view(existing)
        if webhook_url is not None:
            _check_webhook_url(webhook_url)
        state = RequestState(key=key, ctx=replace(ctx, idempotency_key=None), request=request)
        shown_secret = None
        try:
            async with Settlement(
                state,
                self.flow.stores,
                self.flow.limiter,
                self.clock,
                self.settings.job_timeout_s,
                observer=self.flow.observer,
            ) as settlement:
                await self.flow._admit(
                    state, settlement, concurrency=False, reservation_timeout_s=self.settings.job_timeout_s
                )
                if state.job.stream:
                    raise InvalidValue(
                        "A job cannot stream: leave out 'stream' or the Prefer header.", param="stream"
                    )
                if webhook_url is not None and await self.store.webhook_secret(key.id) is None:
                    shown_secret = await self.store.rotate_webhook_secret(key.id)
                assert state.reservation is not None
                job = await self.store.create(
                    id=new_job_id(),
                    key_id=key.id,
                    kind=request.kind,
                    model=state.job.model,
                    request_id=ctx.request_id,
                    base_url=ctx.base_url,
                    params=request.params,
                    uploads=[await self._keep(u) for u in request.uploads],
                    multipart=request.multipart,
                    reservation_id=state.reservation.id,
                    reserved_micros=state.reservation.amount_micros,
                    idempotency_key=ctx.idempotency_key,
                    webhook_url=webhook_url,
                )
                settlement.hand_off()
        except DuplicateJob:  # the same Idempotency-Key, submitted at the same time: refunded above
            assert ctx.idempotency_key is not None
            existing = await self.store.by_idempotency_key(key.id, ctx.idempotency_key)
            assert existing is not None
            return await self.view(existing)
        self._wake.set()
        view = await self.view(job, with_position=False)  # a count of the queue: on GET, not on the 202
        if shown_secret is not None:
            view["webhook_secret"] = shown_secret  # shown once: POST /v1/webhook_secret makes a new one
        return view

    async def get(self, job_id: str, key: ApiKey) -> Job:
        job = await self.store.get(job_id) if job_id.isascii() and len(job_id) <= 40 else None
        if job is None or job.key_id != key.id:  # another key's job does not exist for this one
            raise NotFound(f"No job '{job_id}'.", code="job_not_found", param="job_id")
        return job

    async def page(self, key: ApiKey, limit: int, after: str | None) -> dict[str, Any]:
        if not 1 <= limit <= MAX_LIST:
            raise InvalidValue(f"'limit' must be from 1 to {MAX_LIST}.", param="limit")
        jobs = await self.store.list_for(key.id, limit + 1, after)
        data = [await self.view(j, with_result=False, with_position=False) for j in jobs[:limit]]
        return {
            "object": "list",
            "data": data,
            "has_more": len(jobs) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    async def cancel(self, job_id: str, key: ApiKey) -> dict[str, Any]:
        job = await self.get(job_id, key)
        if job.status == QUEUED and await self.store.finish(
            job.id, CANCELLED, error=_cancelled(), only_from=(QUEUED,)
        ):
            await self._refund(job)
        elif job.status in (QUEUED, RUNNING):  # it started meanwhile: its runner stops it
            await self.store.request_cancel(job.id)
            running = self._running.get(job.id)
            if running is not None:
                self._cancelling.add(job.id)
                running.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(running), timeout=5)
        return await self.view(await self.get(job_id, key))

    async def rotate_secret(self, key: ApiKey) -> dict[str, Any]:
        return {"object": "webhook_secret", "secret": await self.store.rotate_webhook_secret(key.id)}

    async def view(self, job: Job, *, with_result: bool = True, with_position: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": job.id,
            "object": "image.job",
            "status": job.status,
            "kind": job.kind,
            "model": job.model,
            "created_at": int(job.created_at),
            "started_at": int(job.started_at) if job.started_at is not None else None,
            "finished_at": int(job.finished_at) if job.finished_at is not None else None,
        }
        if job.status == QUEUED and with_position:
            out["queue_position"] = await self.store.position(job)
        if job.status in (RUNNING, COMPLETED):
            images = int(job.params.get("n") or 1)
            out["progress"] = {"images_completed": job.images_done, "images": images}
        if job.webhook_url is not None:
            out["webhook"] = {"status": job.webhook_status, "attempts": job.webhook_attempts}
        if job.error is not None:
            out["error"] = job.error
        if job.status == COMPLETED and job.result is not None and with_result:
            out["result"] = await self._result(job, job.result)
        return out

    async def _result(self, job: Job, stored: dict[str, Any], *, urls_only: bool = False) -> dict[str, Any]:
        if urls_only:
            stored = {**stored, "b64": False, "url": True}
        base = self.settings.public_base_url or job.base_url
        return await idempotency.replay(stored, self.flow.stores.blobs, self.flow.signer, base)

    # --- running ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """One runner: claims and runs jobs until cancelled (the lifespan starts `job_runners`)."""
        while True:
            try:
                job = await self.store.claim(self.worker, self.settings.job_lease_s, set(self._running))
            except Exception:
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_s)
                continue
            task = asyncio.create_task(self._run(job))
            self._running[job.id] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done() or job.id in self._cancelling:
                    continue  # the job was cancelled, not this runner
                task.cancel()
                raise
            finally:
                self._running.pop(job.id, None)
                self._cancelling.discard(job.id)

    async def _run(self, job: Job) -> None:
        admitted = await self._admit_run(job)
        if admitted is None:
            return
        key, decision = admitted
        try:
            request = await self._request(job)
        except GatewayError as exc:
            if decision is not None and decision.lease is not None:
                await self.flow.limiter.release(str(key.id), decision.lease)
            await self._fail(job, exc.message, exc.body()["error"])
            return
        ctx = RequestContext(request_id=job.request_id, base_url=job.base_url)
        state = RequestState(key=key, ctx=ctx, request=request, decision=decision)
        state.reservation = Reservation(job.reservation_id, key.id, job.reserved_micros)
        tier = rate_limit.tier_of(key, self.settings.tiers)
        state.multiplier_ppm = key.multiplier_ppm if key.multiplier_ppm is not None else tier.multiplier_ppm
        state.claimed = True  # keeps the stored form of the response (no Idempotency-Key: no claim)
        state.on_image = lambda done: self.store.progress(job.id, self.worker, done)
        watcher = asyncio.create_task(self._watch(job, asyncio.current_task()))
        try:
            async with Settlement(
                state,
                self.flow.stores,
                self.flow.limiter,
                self.clock,
                self.settings.reservation_timeout_s,
                self.settings.history_prompts,
                self.flow.observer,
            ) as settlement:
                state.prepared = await self.flow.prepare(request, self.flow.registry, job.request_id)
                settlement.admitted()
                await self.flow._generate(state, settlement)
        except asyncio.CancelledError:
            if job.id not in self._cancelling:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await self.store.finish(job.id, CANCELLED, worker=self.worker, error=_cancelled())
        except GatewayError as exc:
            await self.store.finish(job.id, FAILED, worker=self.worker, error=exc.body()["error"])
        except Exception:
            log.exception("job %s failed", job.id)
            error = GatewayError("The server had an error while processing the job; it was refunded.")
            await self.store.finish(job.id, FAILED, worker=self.worker, error=error.body()["error"])
        else:
            await self.store.finish(job.id, COMPLETED, worker=self.worker, result=state.stored_response)
        finally:
            watcher.cancel()
        self._wake.set()  # webhooks and other runners: something ended

    async def _admit_run(self, job: Job) -> tuple[ApiKey, Decision | None] | None:
        """The job's key and its concurrency slot; None when the job ended here (failed and
        refunded) or went back to the queue (its key's slots are taken)."""
        now = self.clock.now()
        if job.attempts > self.settings.job_max_attempts:
            await self._fail(job, "The job was started too many times without finishing; it was refunded.")
            return None
        if job.attempts == 1 and now - job.created_at > self.settings.job_timeout_s:
            await self._fail(job, "The job waited longer than the queue allows; it was refunded.")
            return None
        key = await self.store.key(job.key_id)
        if key is None or not key.usable_at(now):
            await self._fail(job, "The job's API key was revoked or expired; it was refunded.")
            return None
        limits = rate_limit.limits_for(key, self.settings.tiers)
        if not limits.concurrency:
            return key, None
        decision = await self.flow.limiter.acquire(
            str(key.id), Limits(concurrency=limits.concurrency), images=1, now=now
        )
        if not decision.allowed:  # the key's slots are taken by its other jobs: wait a turn
            await self.store.requeue(job.id, self.worker)
            await asyncio.sleep(self.settings.job_poll_s)
            return None
        return key, decision

    async def _watch(self, job: Job, runner: asyncio.Task[Any] | None) -> None:
        """Renew the job's lease; stop its run when it is cancelled or another replica took it."""
        every = self.settings.job_lease_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                held, cancel = await self.store.renew(job.id, self.worker, self.settings.job_lease_s)
            except Exception:
                log.exception("renewing job %s failed", job.id)
                continue
            if (cancel or not held) and runner is not None:
                if not held:
                    log.warning("job %s: its lease passed and another runner took it", job.id)
                self._cancelling.add(job.id)
                runner.cancel()
                return

    async def _request(self, job: Job) -> ImageRequest:
        uploads = []
        for kept in job.uploads:
            data = await self.flow.stores.blobs.read(kept["blob"])
            if data is None:
                raise GatewayError("The job's uploaded images are no longer stored; it was refunded.")
            uploads.append(Upload(kept["field"], kept["filename"], kept["content_type"], Payload(data)))
        return ImageRequest(job.kind, job.params, uploads, multipart=job.multipart)  # type: ignore[arg-type]

    async def _keep(self, upload: Upload) -> dict[str, Any]:
        """An upload kept as a blob until the job runs (any replica reads it)."""
        data = b"".join(upload.payload.chunks())
        fmt = sniff_format(data[:16]) or "bin"
        stored = await self.flow.stores.blobs.put(data, fmt, MEDIA_TYPES.get(fmt, "application/octet-stream"))
        return {
            "field": upload.field,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "blob": stored.name,
        }

    async def _fail(self, job: Job, message: str, error: dict[str, Any] | None = None) -> None:
        error = error or GatewayError(message, code="job_failed").body()["error"]
        if await self.store.finish(job.id, FAILED, worker=self.worker, error=error):
            await self._refund(job)

    async def _refund(self, job: Job) -> None:
        reservation = Reservation(job.reservation_id, job.key_id, job.reserved_micros)
        try:
            await self.flow.stores.credits.release(reservation)
        except Exception:  # the sweeper releases it when it expires
            log.exception("job %s: refund failed; its reservation expires on its own", job.id)

    # --- webhooks --------------------------------------------------------------------------

    async def deliver_forever(self) -> None:
        while True:
            try:
                for job in await self.store.due_webhooks():
                    await self._deliver(job)
            except Exception:
                log.exception("webhook delivery round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_s)

    async def _deliver(self, job: Job) -> None:
        settings = self.settings
        if job.webhook_url is None or not await self.store.claim_webhook(
            job, 2 * settings.webhook_timeout_s + 5
        ):
            return
        attempt = job.webhook_attempts + 1
        secret = await self.store.webhook_secret(job.key_id)
        if secret is None:
            log.warning("job %s: its key has no webhook secret (rotated under another secret key)", job.id)
            await self.store.webhook_done(job.id, "failed")
            return
        view = await self.view(job, with_result=False)
        if job.status == COMPLETED and job.result is not None:
            with contextlib.suppress(GatewayError):
                view["result"] = await self._result(job, job.result, urls_only=True)
        body = json.dumps(
            {"type": f"image.job.{job.status}", "timestamp": _iso(self.clock.now()), "data": view},
            separators=(",", ":"),
        )
        headers = sign(secret, f"msg_{job.id}", int(self.clock.now()), body)
        headers["content-type"] = "application/json"
        try:
            status = await self.sender.post(job.webhook_url, body.encode(), headers)
            ok, why = 200 <= status < 300, f"HTTP {status}"
        except FetchError as exc:
            ok, why = False, str(exc)
        if ok:
            await self.store.webhook_done(job.id, "delivered")
        elif attempt >= settings.webhook_max_attempts:
            log.warning("job %s: webhook given up after %d attempts (%s)", job.id, attempt, why)
            await self.store.webhook_done(job.id, "failed")
        else:
            delay = min(settings.webhook_backoff_s * 4 ** (attempt - 1), 3600.0)
            await self.store.webhook_done(job.id, "pending", self.clock.now() + delay)


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of a message (https://www.standardwebhooks.com/, v1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def _check_webhook_url(url: str) -> None:
    if (
        not isinstance(url, str)
        or len(url) > bounds.WEBHOOK_URL
        or not bounds.storable(url)
        or not is_http_url(url)
    ):
        raise InvalidValue(
            f"'webhook_url' must be an http(s) URL of at most {bounds.WEBHOOK_URL} characters.",
            param="webhook_url",
        )


def _cancelled() -> dict[str, Any]:
    return {
        "message": "The job was cancelled; it was refunded.",
        "type": "invalid_request_error",
        "param": None,
        "code": "job_cancelled",
    }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
