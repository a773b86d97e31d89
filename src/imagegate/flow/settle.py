"""Stage: turn a reservation into the actual charge, or refund it in full on failure.

Contract: `settle(ledger, reservation, actual)` charges min(actual, reserved) and refunds the
rest; `refund(ledger, reservation)` returns everything. Both are exactly-once: a reservation
the sweeper already released is neither charged nor refunded again. They never raise for a
closed reservation, so a failing request always ends with its credit returned.
"""

from __future__ import annotations

import anyio.to_thread

from imagegate.storage.ledger import Ledger, Reservation


async def settle(ledger: Ledger, reservation: Reservation, actual_micros: int) -> int:
    charged = await anyio.to_thread.run_sync(ledger.settle, reservation, actual_micros)
    return charged or 0


async def refund(ledger: Ledger, reservation: Reservation) -> None:
    # Shielded: a cancelled request (client gone) must still give its credit back.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(ledger.release, reservation)
