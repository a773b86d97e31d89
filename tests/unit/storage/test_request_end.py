"""Where the unit of work that ends a request writes its images (storage/stores.py SqlRequestEnd):
before its transaction, in place for a lone request or small images, on a worker thread for big
images under load; and never twice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from imagegate.clock import ManualClock
from imagegate.config import Settings
from imagegate.storage.stores import IN_PLACE_BYTES, open_stores, request_stores
from imagegate.storage.usage import UsageRecord


def where() -> str:
    return "loop" if threading.current_thread() is threading.main_thread() else "thread"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("requests_in_flight", "write_bytes", "expected"),
    [
        (1, 2_000_000, "loop"),  # alone: no hop, whatever the size
        (8, IN_PLACE_BYTES, "loop"),  # under load, a small image: the hop would cost as much
        (8, IN_PLACE_BYTES + 1, "thread"),  # under load, a big one: off the event loop
    ],
)
async def test_images_are_written_where_they_cost_least(
    tmp_path: Path, requests_in_flight: int, write_bytes: int, expected: str
) -> None:
    clock = ManualClock(1000.0)
    stores = open_stores(Settings(data_dir=tmp_path), clock)
    try:
        key = stores.keys.create("k", "internal", credit_micros=1_000)[0]
        reservation = stores.ledger.reserve(key.id, 400, "req-1", 60)
        end = request_stores(stores).unit
        stores.db.active = requests_in_flight
        calls: list[str] = []

        def write() -> list[None]:
            calls.append(where())
            return []

        record = UsageRecord(
            request_id="req-1", key_id=key.id, created_at=clock.now(), endpoint="generations", status=200
        )
        kept, charged = await end.finish(reservation, 300, record, write, None, write_bytes)
        assert (kept, charged) == ([], 300)
        assert calls == [expected]  # written once, before the transaction
        assert stores.ledger.balance(key.id) == 700
    finally:
        stores.close()
