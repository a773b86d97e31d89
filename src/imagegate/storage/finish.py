"""The end of a request, in one transaction: index its images, settle or refund its
reservation, write its usage record.

On SQLite every write transaction takes the database's one write lock, so concurrent requests
queue for it: three transactions (images row, settle, usage record), each its own worker-thread
hop, became one (bench/relay.py, 1 client, small body: -0.3 ms median). Committing together also
means a usage record never lacks its settlement, nor a settlement its usage record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from imagegate.storage.blobs import ImageStore, StoredImage
from imagegate.storage.history import HistoryEntry, HistoryRepo
from imagegate.storage.ledger import Ledger, Reservation
from imagegate.storage.usage import UsageRecord, UsageRepo


def finish(
    ledger: Ledger,
    usage: UsageRepo,
    images: ImageStore,
    *,
    reservation: Reservation,
    charge_micros: int | None,
    record: UsageRecord,
    stored: Sequence[StoredImage] = (),
    history: tuple[HistoryRepo, HistoryEntry] | None = None,
) -> int:
    """Settle to `charge_micros` (None: refund in full), index `stored` (written with
    ImageStore.write), write `record` with the amount charged and, for a request that delivered
    images, its `history` entry (with `stored` among its outputs); returns the amount charged (0
    when refunded, or when the sweeper had already released the reservation)."""
    with ledger.engine.begin() as conn:
        for image in stored:
            images.index(conn, image)
        if charge_micros is None:
            ledger.release_in(conn, reservation)
            charged = 0
        else:
            charged = ledger.settle_in(conn, reservation, charge_micros) or 0
        usage.record_in(conn, replace(record, cost_micros=charged))
        if history is not None:
            repo, entry = history
            outputs = [*entry.outputs, *({"sha256": i.sha256, "ext": i.ext} for i in stored)]
            repo.record_in(conn, replace(entry, outputs=outputs, cost_micros=charged))
    return charged
