"""The flow's storage ports (imagegate/flow/ports.py) in memory, for unit tests of the request path
without a database. Each keeps the promises of its SQL implementation (storage/stores.py): a
balance never goes below zero, a reservation leaves 'held' exactly once, an Idempotency-Key has the
same four outcomes and a pending claim expires."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from imagegate.clock import Clock
from imagegate.flow.ports import Kept
from imagegate.storage.blobs import StoredImage
from imagegate.storage.history import HistoryEntry
from imagegate.storage.idempotency import Claim
from imagegate.storage.keys import ApiKey
from imagegate.storage.ledger import InsufficientBalance, Reservation
from imagegate.storage.usage import UsageRecord


@dataclass
class FakeKeys:
    by_secret: dict[str, ApiKey] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, secret: str, **fields: Any) -> ApiKey:
        key = ApiKey(
            id=next(self.ids),
            name=fields.pop("name", "test"),
            prefix=secret[:12],
            tier=fields.pop("tier", "internal"),
            created_at=0.0,
            revoked_at=None,
            **fields,
        )
        self.by_secret[secret] = key
        return key

    async def authenticate(self, secret: str) -> ApiKey | None:
        return self.by_secret.get(secret)


@dataclass
class FakeCredits:
    clock: Clock
    balances: dict[int, int] = field(default_factory=dict)
    held: dict[str, Reservation] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # reservation id -> held/settled/released
    charged: dict[str, int] = field(default_factory=dict)
    expires: dict[str, float] = field(default_factory=dict)
    renewed: list[str] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    fail_release: BaseException | None = None  # the next refund raises this, having changed nothing

    async def reserve(self, key_id: int, micros: int, request_id: str, timeout_s: float) -> Reservation:
        balance = self.balances.get(key_id, 0)
        if balance < micros:
            raise InsufficientBalance(balance, micros)
        self.balances[key_id] = balance - micros
        rid = f"res-{next(self.ids)}"
        reservation = Reservation(rid, key_id, micros)
        self.held[rid], self.status[rid] = reservation, "held"
        self.expires[rid] = self.clock.now() + timeout_s
        return reservation

    async def renew(self, reservation: Reservation, timeout_s: float) -> None:
        if self.status.get(reservation.id) == "held":
            self.renewed.append(reservation.id)
            self.expires[reservation.id] = self.clock.now() + timeout_s

    def close(self, reservation: Reservation, charge: int | None) -> int | None:
        """Settle (charge) or release (None), exactly once; the amount charged, None if closed."""
        if self.status.get(reservation.id) != "held":
            return None
        charged = 0 if charge is None else max(0, min(charge, reservation.amount_micros))
        self.balances[reservation.key_id] += reservation.amount_micros - charged
        self.status[reservation.id] = "released" if charge is None else "settled"
        self.charged[reservation.id] = charged
        return charged

    async def settle(self, reservation: Reservation, micros: int) -> int | None:
        return self.close(reservation, micros)

    async def release(self, reservation: Reservation) -> bool:
        if self.fail_release is not None:
            exc, self.fail_release = self.fail_release, None
            raise exc
        return self.close(reservation, None) is not None

    def sweep(self) -> int:
        stale = [
            rid for rid, st in self.status.items() if st == "held" and self.expires[rid] <= self.clock.now()
        ]
        for rid in stale:
            self.close(self.held[rid], None)
        return len(stale)


@dataclass
class FakeClaims:
    clock: Clock
    ttl_s: float = 86_400
    rows: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)

    async def begin(self, key_id: int, idem_key: str, body_hash: str, pending_s: float) -> Claim:
        now, row = self.clock.now(), self.rows.get((key_id, idem_key))
        if row is not None and row["expires_at"] <= now:
            row = None  # an expired claim is forgotten
        if row is None:
            self.rows[(key_id, idem_key)] = {
                "hash": body_hash,
                "status": "pending",
                "response": None,
                "expires_at": now + pending_s,
            }
            return Claim("new")
        if row["hash"] != body_hash:
            return Claim("conflict")
        if row["status"] == "done":
            return Claim("replay", row["response"])
        return Claim("in_progress")

    async def renew(self, key_id: int, idem_key: str, pending_s: float) -> None:
        row = self.rows.get((key_id, idem_key))
        if row is not None and row["status"] == "pending":
            row["expires_at"] = self.clock.now() + pending_s

    async def complete(self, key_id: int, idem_key: str, response: dict[str, Any]) -> None:
        row = self.rows[(key_id, idem_key)]
        row.update(status="done", response=response, expires_at=self.clock.now() + self.ttl_s)

    async def abandon(self, key_id: int, idem_key: str) -> None:
        row = self.rows.get((key_id, idem_key))
        if row is not None and row["status"] == "pending":
            del self.rows[(key_id, idem_key)]


@dataclass
class FakeUsage:
    records: list[UsageRecord] = field(default_factory=list)
    fail_next: BaseException | None = None

    async def record(self, record: UsageRecord) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.records.append(record)


@dataclass
class FakeBlobs:
    written: dict[str, bytes] = field(default_factory=dict)  # files, indexed or not
    indexed: set[str] = field(default_factory=set)

    def write(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        digest = hashlib.sha256(data).hexdigest()
        assert sha256 in (None, digest), "a blob named by another hash than its bytes'"
        stored = StoredImage(digest, ext, media_type, len(data))
        self.written[stored.name] = data
        return stored

    async def put(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        stored = self.write(data, ext, media_type, sha256)
        self.indexed.add(stored.name)
        return stored

    async def read(self, name: str) -> bytes | None:
        return self.written.get(name) if name in self.indexed else None


@dataclass
class FakeRequestEnd:
    """The unit of work: write, then index + settle (or refund) + record, all or nothing."""

    credits: FakeCredits
    usage: FakeUsage
    blobs: FakeBlobs
    fail_next: BaseException | None = None  # the next finish raises this, having changed nothing
    history: list[HistoryEntry] = field(default_factory=list)  # the image history's entries

    async def finish(
        self,
        reservation: Reservation,
        charge_micros: int | None,
        record: UsageRecord,
        write: Callable[[], Kept] | None = None,
        history: HistoryEntry | None = None,
        write_bytes: int = 0,  # noqa: ARG002 (where the real one writes: not modelled here)
    ) -> tuple[Kept, int]:
        kept = write() if write is not None else []
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        for item in kept:
            if item is not None:
                self.blobs.indexed.add(item[1].name)
        charged = self.credits.close(reservation, charge_micros) or 0
        self.usage.records.append(replace(record, cost_micros=charged))
        if history is not None:
            outputs = [*history.outputs, *({"sha256": i[1].sha256, "ext": i[1].ext} for i in kept if i)]
            self.history.append(replace(history, outputs=outputs, cost_micros=charged))
        return kept, charged


@dataclass
class FakeInFlight:
    active: int = 0
    most: int = 0

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            yield
        finally:
            self.active -= 1


@dataclass
class FakeStores:
    keys: FakeKeys
    credits: FakeCredits
    claims: FakeClaims
    usage: FakeUsage
    blobs: FakeBlobs
    unit: FakeRequestEnd
    in_flight: FakeInFlight

    @classmethod
    def new(cls, clock: Clock) -> FakeStores:
        credits, usage, blobs = FakeCredits(clock), FakeUsage(), FakeBlobs()
        return cls(
            FakeKeys(),
            credits,
            FakeClaims(clock),
            usage,
            blobs,
            FakeRequestEnd(credits, usage, blobs),
            FakeInFlight(),
        )
