"""`open_stores(settings)`: the database, its repositories and the blob store, wired once, for the
app and the CLI alike; and `request_stores(stores)`: the flow's ports (flow/ports.py) over them.

Every call a port makes goes through the one `Database` (storage/runner.py), which decides where
it runs; `finish` is the request's unit of work (storage/finish.py: one transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.storage import finish as finish_tx
from imagegate.storage.blobs import ImageStore, StoredImage, open_backend
from imagegate.storage.channels import ChannelRepo
from imagegate.storage.db import journal_is_wal, make_engine, migrate
from imagegate.storage.history import HistoryEntry, HistoryRepo
from imagegate.storage.idempotency import Claim, IdempotencyRepo
from imagegate.storage.jobs import Job, JobRepo, WebhookSecretRepo
from imagegate.storage.keys import ApiKey, KeyRepo
from imagegate.storage.ledger import Ledger, Reservation
from imagegate.storage.runner import Database
from imagegate.storage.secretbox import SecretBox
from imagegate.storage.usage import UsageRecord, UsageRepo
from imagegate.writer_lock import WriterLock

log = logging.getLogger("imagegate.storage")

Kept = Sequence[tuple[bytes, StoredImage] | None]  # as flow/ports.py Kept


@dataclass(frozen=True, slots=True)
class Stores:
    """The repositories over one database, and the one place their calls run."""

    sql: Engine
    db: Database
    keys: KeyRepo
    ledger: Ledger
    usage: UsageRepo
    idempotency: IdempotencyRepo
    images: ImageStore
    channels: ChannelRepo
    jobs: JobRepo
    webhook_secrets: WebhookSecretRepo
    history: HistoryRepo
    created: bool  # the database was new (migrate made its schema)
    can_seal: bool = True  # a channel secret key is there (see open_stores)

    def close(self) -> None:
        self.sql.dispose()
        if self.db.writers is not None:
            self.db.writers.close()

    async def drained(self, timeout_s: float = 10.0, quiet_s: float = 0.02) -> None:
        """Wait (at most `timeout_s`) until no database call is left running: a task cancelled at
        shutdown leaves its call running on its worker thread (neither asyncio nor anyio can stop
        a thread), and `close` would then orphan that call's connection, left open. Every pooled
        connection back, and no call on a thread, for `quiet_s` in a row: a call that opens one
        connection after another (the ledger's sweep) has none checked out between two of them."""
        checked_out = getattr(self.sql.pool, "checkedout", None)
        with anyio.move_on_after(timeout_s):
            quiet_since: float | None = None
            while True:
                busy = self.db.threads > 0 or (checked_out is not None and checked_out() > 0)
                now = anyio.current_time()
                if busy:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= quiet_s:
                    return
                await anyio.sleep(0.005)


class NoDatabase(Exception):
    """The configured database does not exist (and the caller may not create it)."""


def describe(settings: Settings) -> str:
    """The database as a person should read it: the SQLite file's absolute path, else the URL."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return str(Path(url.database).resolve())
    return url.render_as_string(hide_password=True)


def open_stores(settings: Settings, clock: Clock, *, create: bool = True) -> Stores:
    """Connect, migrate and wire the repositories: the server's lifespan and every CLI command.

    Without `create` (the CLI's commands other than `serve`), a database that does not exist raises
    NoDatabase before anything is written, and no channel secret key is generated: without one
    `Stores.can_seal` is False and the channels repository refuses to seal or open keys.
    """
    url = make_url(settings.resolved_database_url)
    if not create and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).exists():  # checked first: connecting would create the file
            raise NoDatabase(describe(settings))
    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    sql = make_engine(settings.resolved_database_url)
    if not create and not inspect(sql).has_table("alembic_version"):
        sql.dispose()
        raise NoDatabase(describe(settings))
    created = migrate(sql)
    can_seal = create or bool(settings.secret_key) or (settings.data_dir / "secret-key").exists()
    box = SecretBox.from_settings(settings.secret_key, settings.data_dir) if can_seal else SecretBox.missing()
    return Stores(
        sql=sql,
        db=Database(sqlite=sql.dialect.name == "sqlite", wal=journal_is_wal(sql), writers=writer_lock(sql)),
        keys=KeyRepo(sql, clock),
        ledger=Ledger(sql, clock),
        usage=UsageRepo(sql),
        idempotency=IdempotencyRepo(sql, clock, settings.idempotency_ttl_s),
        images=ImageStore(open_backend(settings), sql, clock, settings.image_retention_s),
        channels=ChannelRepo(sql, clock, box),
        jobs=JobRepo(sql, clock),
        webhook_secrets=WebhookSecretRepo(sql, clock, box),
        history=HistoryRepo(sql, clock, settings.history_retention_s),
        created=created,
        can_seal=can_seal,
    )


def writer_lock(sql: Engine) -> WriterLock | None:
    """The cross-process writer lock of a SQLite file database; None for any other, or where its
    file cannot be made (a read-only data directory): then writers wait SQLite's way."""
    database = sql.url.database
    if sql.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        return WriterLock.beside(database)
    except OSError as exc:
        log.info("no writer lock beside %s (%s): SQLite's own lock orders the writers", database, exc)
        return None


@dataclass(frozen=True, slots=True)
class SqlKeys:
    keys: KeyRepo
    db: Database

    async def authenticate(self, secret: str) -> ApiKey | None:
        return await self.db.read(self.keys.authenticate, secret)


@dataclass(frozen=True, slots=True)
class SqlCredits:
    ledger: Ledger
    db: Database

    async def reserve(self, key_id: int, micros: int, request_id: str, timeout_s: float) -> Reservation:
        return await self.db.run(self.ledger.reserve, key_id, micros, request_id, timeout_s)

    async def renew(self, reservation: Reservation, timeout_s: float) -> None:
        await self.db.run(self.ledger.renew, reservation, timeout_s)

    async def settle(self, reservation: Reservation, micros: int) -> int | None:
        return await self.db.run(self.ledger.settle, reservation, micros)

    async def release(self, reservation: Reservation) -> bool:
        return await self.db.run(self.ledger.release, reservation)


@dataclass(frozen=True, slots=True)
class SqlClaims:
    repo: IdempotencyRepo
    db: Database

    async def begin(self, key_id: int, idem_key: str, body_hash: str, pending_s: float) -> Claim:
        return await self.db.run(self.repo.begin, key_id, idem_key, body_hash, pending_s)

    async def renew(self, key_id: int, idem_key: str, pending_s: float) -> None:
        await self.db.run(self.repo.renew, key_id, idem_key, pending_s)

    async def complete(self, key_id: int, idem_key: str, response: dict[str, Any]) -> None:
        await self.db.run(self.repo.complete, key_id, idem_key, response)

    async def abandon(self, key_id: int, idem_key: str) -> None:
        await self.db.run(self.repo.abandon, key_id, idem_key)


@dataclass(frozen=True, slots=True)
class SqlUsage:
    repo: UsageRepo
    db: Database

    async def record(self, record: UsageRecord) -> None:
        await self.db.run(self.repo.record, record)


@dataclass(frozen=True, slots=True)
class SqlBlobs:
    images: ImageStore

    async def put(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        return await anyio.to_thread.run_sync(self.images.put, data, ext, media_type, sha256)

    def write(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        return self.images.write(data, ext, media_type, sha256)

    async def read(self, name: str) -> bytes | None:
        sha, _, ext = name.partition(".")
        return await anyio.to_thread.run_sync(self.images.read, sha, ext)


# Images up to this many bytes (with an edit's inputs, which sealing reads: flow/store_image.py
# sealing_bytes) are sealed and written on the event loop even under load (bench/relay.py, 32
# connections, 1 worker, A/B alternated 3 times: small bodies 186 -> 221 req/s in place;
# image-sized 80 -> 67, so those stay on a worker thread).
IN_PLACE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SqlRequestEnd:
    ledger: Ledger
    usage: UsageRepo
    images: ImageStore
    history: HistoryRepo
    db: Database

    async def finish(
        self,
        reservation: Reservation,
        charge_micros: int | None,
        record: UsageRecord,
        write: Callable[[], Kept] | None = None,
        history: HistoryEntry | None = None,
        write_bytes: int = 0,
    ) -> tuple[Kept, int]:
        written: Kept | None = None
        if write is not None and (self.images.remote or self.db.sqlite):
            # `write` seals and writes the images: 1-5 ms for a 1.1 MB image, waiting on the disk
            # or, for uploads, the network. Before the transaction, never inside it: SQLite's one
            # database thread would hold every other request's transaction behind it, and a call
            # that `db.run` placed on the event loop and met another writer's lock runs again.
            # A lone request keeps them in place, with no hop to pay (as `db.run` does), and so
            # do small images, whose hop (two thread wake-ups, the GIL handed over twice) costs
            # about what sealing and writing them does; uploads and big images under load take a
            # worker thread.
            small = write_bytes <= IN_PLACE_BYTES
            if (self.db.in_place or small) and not self.images.remote:
                written = write()
            else:
                written = await anyio.to_thread.run_sync(write)

        def run() -> tuple[Kept, int]:
            kept = written if written is not None else (write() if write is not None else [])
            stored = [item[1] for item in kept if item is not None]
            charged = finish_tx.finish(
                self.ledger,
                self.usage,
                self.images,
                reservation=reservation,
                charge_micros=charge_micros,
                record=record,
                stored=stored,
                history=(self.history, history) if history is not None else None,
            )
            return kept, charged

        return await self.db.run(run)


@dataclass(frozen=True, slots=True)
class SqlJobs:
    """flow/ports.py JobStore over SQL."""

    repo: JobRepo
    secrets: WebhookSecretRepo
    keys: KeyRepo
    db: Database

    async def create(self, **values: Any) -> Job:
        return await self.db.run(partial(self.repo.create, **values))

    async def get(self, job_id: str) -> Job | None:
        return await self.db.read(self.repo.get, job_id)

    async def by_idempotency_key(self, key_id: int, idempotency_key: str) -> Job | None:
        return await self.db.read(self.repo.by_idempotency_key, key_id, idempotency_key)

    async def list_for(self, key_id: int, limit: int, after: str | None) -> list[Job]:
        return await self.db.read(self.repo.list_for, key_id, limit, after)

    async def position(self, job: Job) -> int:
        return await self.db.read(self.repo.position, job)

    async def claim(self, worker: str, lease_s: float, skip: set[str]) -> Job | None:
        return await self.db.run_in_thread(self.repo.claim, worker, lease_s, skip)

    async def requeue(self, job_id: str, worker: str) -> None:
        await self.db.run(self.repo.requeue, job_id, worker)

    async def progress(self, job_id: str, worker: str, images_done: int) -> None:
        await self.db.run(self.repo.progress, job_id, worker, images_done)

    async def renew(self, job_id: str, worker: str, lease_s: float) -> tuple[bool, bool]:
        return await self.db.run(self.repo.renew, job_id, worker, lease_s)

    async def finish(self, job_id: str, status: str, **fields: Any) -> bool:
        return await self.db.run(partial(self.repo.finish, job_id, status, **fields))

    async def request_cancel(self, job_id: str) -> None:
        await self.db.run(self.repo.request_cancel, job_id)

    async def due_webhooks(self) -> list[Job]:
        return await self.db.run_in_thread(self.repo.due_webhooks)

    async def claim_webhook(self, job: Job, hold_s: float) -> bool:
        return await self.db.run(self.repo.claim_webhook, job, hold_s)

    async def webhook_done(self, job_id: str, status: str, next_at: float | None = None) -> None:
        await self.db.run(self.repo.webhook_done, job_id, status, next_at)

    async def webhook_secret(self, key_id: int) -> str | None:
        return await self.db.read(self.secrets.get, key_id)

    async def rotate_webhook_secret(self, key_id: int) -> str:
        return await self.db.run(self.secrets.rotate, key_id)

    async def key(self, key_id: int) -> ApiKey | None:
        return await self.db.read(self.keys.get, key_id)


def job_store(s: Stores) -> SqlJobs:
    return SqlJobs(s.jobs, s.webhook_secrets, s.keys, s.db)


@dataclass(frozen=True, slots=True)
class SqlPorts:
    """The flow's ports (flow/ports.py RequestStores) over SQL."""

    keys: SqlKeys
    credits: SqlCredits
    claims: SqlClaims
    usage: SqlUsage
    blobs: SqlBlobs
    unit: SqlRequestEnd
    in_flight: Database


def request_stores(s: Stores) -> SqlPorts:
    return SqlPorts(
        keys=SqlKeys(s.keys, s.db),
        credits=SqlCredits(s.ledger, s.db),
        claims=SqlClaims(s.idempotency, s.db),
        usage=SqlUsage(s.usage, s.db),
        blobs=SqlBlobs(s.images),
        unit=SqlRequestEnd(s.ledger, s.usage, s.images, s.history, s.db),
        in_flight=s.db,
    )
