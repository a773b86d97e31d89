"""The credits ledger on SQLite and PostgreSQL: exact, never negative, under real concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from imagegate.clock import ManualClock
from imagegate.storage.idempotency import IdempotencyRepo
from imagegate.storage.keys import KeyRepo
from imagegate.storage.ledger import InsufficientBalance, Ledger


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_200_concurrent_reservations_for_50_images(engine: Engine, clock: ManualClock) -> None:
    price = 10_880  # one low 1024x1024 image, micro-dollars
    key, _ = KeyRepo(engine, clock).create("k", credit_micros=50 * price)
    ledger = Ledger(engine, clock)

    def attempt(i: int) -> bool:
        try:
            r = ledger.reserve(key.id, price, f"req{i}", 60)
        except InsufficientBalance:
            return False
        assert ledger.settle(r, price) == price
        return True

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(attempt, range(200)))
    assert sum(results) == 50
    assert ledger.balance(key.id) == 0
    assert ledger.ledger_sum(key.id) == 0
    assert ledger.totals(key.id) == (50 * price, 50 * price)


def test_settle_refunds_the_difference_and_is_exactly_once(engine: Engine, clock: ManualClock) -> None:
    key, _ = KeyRepo(engine, clock).create("k", credit_micros=1_000)
    ledger = Ledger(engine, clock)
    r = ledger.reserve(key.id, 600, "a", 60)
    assert ledger.balance(key.id) == 400
    assert ledger.settle(r, 250) == 250
    assert ledger.balance(key.id) == 750
    assert ledger.settle(r, 250) is None  # a second settle changes nothing
    assert ledger.release(r) is False
    assert ledger.balance(key.id) == ledger.ledger_sum(key.id) == 750
    over = ledger.reserve(key.id, 100, "b", 60)
    assert ledger.settle(over, 10_000) == 100  # never more than was reserved
    with pytest.raises(InsufficientBalance):
        ledger.reserve(key.id, 651, "c", 60)


def test_sweeper_releases_stale_reservations_once(engine: Engine, clock: ManualClock) -> None:
    key, _ = KeyRepo(engine, clock).create("k", credit_micros=1_000)
    ledger = Ledger(engine, clock)
    stale = ledger.reserve(key.id, 700, "crashed", timeout_s=30)
    fresh = ledger.reserve(key.id, 100, "running", timeout_s=300)
    clock.advance(31)
    assert ledger.sweep() == 1
    assert ledger.sweep() == 0
    assert ledger.balance(key.id) == 900
    assert ledger.settle(stale, 700) is None  # the crashed request's late settle charges nothing
    assert ledger.settle(fresh, 100) == 100
    assert ledger.balance(key.id) == ledger.ledger_sum(key.id) == 900


def test_top_up_and_unknown_key(engine: Engine, clock: ManualClock) -> None:
    key, _ = KeyRepo(engine, clock).create("k")
    ledger = Ledger(engine, clock)
    assert ledger.top_up(key.id, 2_500_000, "invoice 7") == 2_500_000
    with pytest.raises(KeyError):
        ledger.top_up(999_999, 1)
    with pytest.raises(ValueError):
        ledger.top_up(key.id, 0)


def test_idempotency_claims(engine: Engine, clock: ManualClock) -> None:
    key, _ = KeyRepo(engine, clock).create("k")
    repo = IdempotencyRepo(engine, clock, ttl_s=100)
    assert repo.begin(key.id, "idem", "h1").outcome == "new"
    assert repo.begin(key.id, "idem", "h1").outcome == "in_progress"
    assert repo.begin(key.id, "idem", "h2").outcome == "conflict"
    repo.complete(key.id, "idem", {"created": 1})
    replay = repo.begin(key.id, "idem", "h1")
    assert replay.outcome == "replay" and replay.response == {"created": 1}
    repo.abandon(key.id, "idem")  # only pending claims are abandoned
    assert repo.begin(key.id, "idem", "h1").outcome == "replay"
    clock.advance(101)
    assert repo.begin(key.id, "idem", "h2").outcome == "new"  # expired: the key is free again

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: repo.begin(key.id, "race", "h").outcome, range(40)))
    assert outcomes.count("new") == 1
