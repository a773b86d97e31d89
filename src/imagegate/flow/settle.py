"""Stage: turn a reservation into the actual charge, or refund it in full on failure.

Contract: `settle(ledger, reservation, actual)` charges min(actual, reserved) and refunds the
rest, exactly once: a reservation the sweeper already released is not charged. It never raises
for a closed reservation.
`finish(...)` is how a request ends, in one database call (flow/database.py): `write` the image files, then
one transaction with their rows, the settlement (or the refund, when `charge_micros` is None)
and the usage record (storage/finish.py). It returns what `write` kept and the amount charged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import anyio.to_thread

from imagegate.flow.database import Database
from imagegate.storage import finish as finish_tx
from imagegate.storage.blobs import ImageStore, StoredImage
from imagegate.storage.ledger import Ledger, Reservation
from imagegate.storage.usage import UsageRecord, UsageRepo

Kept = Sequence[tuple[bytes, StoredImage] | None]  # each image's bytes and blob (None: missing)


async def settle(ledger: Ledger, reservation: Reservation, actual_micros: int) -> int:
    charged = await anyio.to_thread.run_sync(ledger.settle, reservation, actual_micros)
    return charged or 0


async def finish(
    ledger: Ledger, usage: UsageRepo, images: ImageStore, *, reservation: Reservation,
    charge_micros: int | None, record: UsageRecord, write: Callable[[], Kept] | None = None,
    db: Database,
) -> tuple[Kept, int]:
    def run() -> tuple[Kept, int]:
        kept = write() if write is not None else ()
        stored = [item[1] for item in kept if item is not None]
        charged = finish_tx.finish(ledger, usage, images, reservation=reservation,
                                   charge_micros=charge_micros, record=record, stored=stored)
        return kept, charged

    # Shielded: a cancelled request (client gone) still settles, or gets its credit back, and is recorded.
    with anyio.CancelScope(shield=True):
        return await db.run(run)
