"""Background work of a gateway process, started by the app's lifespan: reload the channels into
the flow's routes, probe auto-disabled channels, sweep what expired (images, reservations whose
process died, Idempotency-Keys). Each runs now and then every so often; a failure is logged and
never stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from imagegate.channels import Channels, Prober, channel_routes
from imagegate.config import Settings
from imagegate.engines.fetch import provider_fetcher
from imagegate.engines.registry import build_registry
from imagegate.engines.upstream import Session
from imagegate.flow.run import ImageFlow
from imagegate.storage.channels import Channel
from imagegate.storage.stores import Stores

log = logging.getLogger("imagegate")


class Maintenance:
    def __init__(self, settings: Settings, stores: Stores, flow: ImageFlow, upstream: Session) -> None:
        self.settings = settings
        self.stores = stores
        self.flow = flow
        self.upstream = upstream
        self._reported: set[str] = set()  # unusable channels already logged
        self._loaded: list[Channel] | None = None  # the channels the routes were built from
        self.prober = Prober(
            stores.channels, upstream, settings.channel_balance_probe_s, provider_fetcher(settings)
        )

    async def reload_channels(self) -> None:
        """Rebuild the routes from the channels table (every replica, every few seconds). A channel
        whose key cannot be unsealed is skipped, and said so once (log, `channels list`, /admin).
        Unchanged channels keep the routes as they are: rebuilding them every few seconds took a
        tenth of a busy gateway's event loop (the plugins' entry points read from disk)."""
        channels = await self.stores.db.read_in_thread(self.stores.channels.list)
        if channels == self._loaded:
            return
        self._loaded = channels
        broken = {c.name: c.error for c in channels if c.error}
        for name in broken.keys() - self._reported:
            log.error("channel %s is skipped: %s", name, broken[name])
        self._reported = set(broken)
        self.flow.registry = build_registry(self.settings, map(channel_routes, channels), self.upstream)

    async def disable_channel(self, name: str, reason: str) -> None:
        await self.stores.db.run_in_thread(Channels(self.stores.channels).disable_named, name, reason)
        await self.reload_channels()

    async def probe_channels(self) -> dict[str, int]:
        revived = await self.prober.run()
        if revived:
            await self.reload_channels()
        return {"channels re-enabled": len(revived)}

    async def sweep(self) -> dict[str, int]:
        """Expired images, stale reservations (their process died) and old idempotency keys."""
        db, s = self.stores.db, self.stores
        swept = {
            "reservations": await db.run_in_thread(s.ledger.sweep),
            "idempotency_keys": await db.run_in_thread(s.idempotency.sweep),
            "history": await db.run_in_thread(s.history.sweep),
        }
        # The images last, so an unreachable bucket never holds up the rest. Their rows on the
        # database's thread, then their blobs (a bucket's: network calls) on a thread of their own.
        expired = await db.run_in_thread(s.images.expire)
        await asyncio.to_thread(s.images.drop, expired)
        return {"images": len(expired), **swept}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The periodic jobs, for as long as the block runs."""
        s = self.settings
        tasks = [
            asyncio.create_task(_every(s.sweep_interval_s, self.sweep, "sweep")),
            asyncio.create_task(_every(s.channel_refresh_s, self.reload_channels, "reload")),
            asyncio.create_task(_every(s.channel_probe_interval_s, self.probe_channels, "probe")),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _every(interval_s: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `job` now and then every `interval_s`; a failure is logged and never stops it."""
    while True:
        try:
            result = await job()
            if isinstance(result, dict) and any(result.values()):
                log.info("%s: %s", what, ", ".join(f"{v} {k}" for k, v in result.items() if v))
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(interval_s)
