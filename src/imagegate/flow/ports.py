"""What the request path needs from storage: ports, not repositories.

The flow sees only these protocols; `storage/stores.py` implements them over SQL (each
call placed by the one `storage.runner.Database`), and `tests/fakes/stores.py` in memory, so every
branch of the flow has a unit test that needs no database.

    keys         the caller's key, by its secret
    credits      hold a request's maximum cost, keep the hold alive, give it back
    claims       Idempotency-Key: claim, keep alive, complete with the response, abandon
    usage        the usage record of a request that ended before its reservation
    blobs        image bytes (content-addressed), for streams and replays
    unit         the request's final transaction: image rows, settlement (or refund), usage record

and, apart from storage, `RequestObserver`: told of every request's end (metrics, access logs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from imagegate.storage.blobs import StoredImage
from imagegate.storage.history import HistoryEntry
from imagegate.storage.idempotency import Claim
from imagegate.storage.jobs import Job
from imagegate.storage.keys import ApiKey
from imagegate.storage.ledger import Reservation
from imagegate.storage.usage import UsageRecord

Kept = Sequence[tuple[bytes, StoredImage] | None]  # each image's bytes and blob (None: missing)


class KeyLookup(Protocol):
    async def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        ...


class Credits(Protocol):
    async def reserve(self, key_id: int, micros: int, request_id: str, timeout_s: float) -> Reservation:
        """Hold `micros` of the balance, or raise storage.ledger.InsufficientBalance."""
        ...

    async def renew(self, reservation: Reservation, timeout_s: float) -> None:
        """The request is still running: the sweeper leaves it alone for `timeout_s` more."""
        ...

    async def settle(self, reservation: Reservation, micros: int) -> int | None:
        """Charge min(micros, held) and refund the rest, alone (None: already closed)."""
        ...

    async def release(self, reservation: Reservation) -> bool:
        """Refund in full, alone (False: already closed)."""
        ...


class Claims(Protocol):
    async def begin(self, key_id: int, idem_key: str, body_hash: str, pending_s: float) -> Claim:
        """Claim the key for this request; a claim left pending expires after `pending_s`."""
        ...

    async def renew(self, key_id: int, idem_key: str, pending_s: float) -> None: ...

    async def complete(self, key_id: int, idem_key: str, response: dict[str, Any]) -> None: ...

    async def abandon(self, key_id: int, idem_key: str) -> None: ...


class UsageLog(Protocol):
    async def record(self, record: UsageRecord) -> None: ...


class Blobs(Protocol):
    async def put(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        """Write and index (a streamed image, delivered before the request ends). `sha256`: as
        `write`'s."""
        ...

    def write(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        """Write without indexing: synchronous, inside `RequestEnd.finish`'s `write`. `sha256`:
        the data's SHA-256 (hex) where the caller has it already; else computed here."""
        ...

    async def read(self, name: str) -> bytes | None:
        """A stored, unexpired image's bytes (replays)."""
        ...


class RequestEnd(Protocol):
    """The unit of work that ends a request: one call, one transaction."""

    async def finish(
        self,
        reservation: Reservation,
        charge_micros: int | None,
        record: UsageRecord,
        write: Callable[[], Kept] | None = None,
        history: HistoryEntry | None = None,
        write_bytes: int = 0,
    ) -> tuple[Kept, int]:
        """`write` the image files (about `write_bytes` of them), then in one transaction index
        them, settle to `charge_micros` (None: refund in full) and write `record` with the amount
        charged. Returns what `write` kept and the amount charged (0 when the sweeper had already
        released the reservation)."""
        ...


class InFlight(Protocol):
    def request(self) -> AbstractContextManager[None]:
        """Count a request in flight (the SQL runner places calls by it)."""
        ...


class RequestStores(Protocol):
    """Everything the request path keeps: storage/stores.py SqlPorts, tests/fakes/stores.py."""

    @property
    def keys(self) -> KeyLookup: ...

    @property
    def credits(self) -> Credits: ...

    @property
    def claims(self) -> Claims: ...

    @property
    def usage(self) -> UsageLog: ...

    @property
    def blobs(self) -> Blobs: ...

    @property
    def unit(self) -> RequestEnd: ...

    @property
    def in_flight(self) -> InFlight: ...


class JobStore(Protocol):
    """Asynchronous jobs' rows (storage/jobs.py JobRepo, each call on the database's thread)."""

    async def create(self, **values: Any) -> Job: ...
    async def get(self, job_id: str) -> Job | None: ...
    async def by_idempotency_key(self, key_id: int, idempotency_key: str) -> Job | None: ...
    async def list_for(self, key_id: int, limit: int, after: str | None) -> list[Job]: ...
    async def position(self, job: Job) -> int: ...
    async def claim(self, worker: str, lease_s: float, skip: set[str]) -> Job | None: ...
    async def requeue(self, job_id: str, worker: str) -> None: ...
    async def progress(self, job_id: str, worker: str, images_done: int) -> None: ...
    async def renew(self, job_id: str, worker: str, lease_s: float) -> tuple[bool, bool]: ...
    async def finish(self, job_id: str, status: str, **fields: Any) -> bool: ...
    async def request_cancel(self, job_id: str) -> None: ...
    async def due_webhooks(self) -> list[Job]: ...
    async def claim_webhook(self, job: Job, hold_s: float) -> bool: ...
    async def webhook_done(self, job_id: str, status: str, next_at: float | None = None) -> None: ...
    async def webhook_secret(self, key_id: int) -> str | None: ...
    async def rotate_webhook_secret(self, key_id: int) -> str: ...
    async def key(self, key_id: int) -> ApiKey | None: ...


class RequestObserver(Protocol):
    """Told once of each images request's end, with its usage record as written (its final cost
    in `cost_micros`) and its prompt. Called on the event loop: it must neither block nor raise
    (Settlement logs what it raises and goes on)."""

    def ended(self, record: UsageRecord, prompt: str | None) -> None: ...
