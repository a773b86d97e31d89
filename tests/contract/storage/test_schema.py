"""The schema on SQLite and PostgreSQL holds every value the entry checks let in.

The sizes come from storage/bounds.py (the tables use them, and so do the checks); the migrations
write them out, so a test compares the migrated database with the tables. Values are written at
their bounds in characters that take two bytes (PostgreSQL counts characters, not bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Engine, String, insert, inspect, select, text

from imagegate.clock import ManualClock
from imagegate.storage import bounds
from imagegate.storage.channels import ChannelRepo
from imagegate.storage.db import MIGRATIONS, make_engine
from imagegate.storage.idempotency import IdempotencyRepo
from imagegate.storage.keys import KeyRepo
from imagegate.storage.ledger import Ledger
from imagegate.storage.secretbox import SecretBox
from imagegate.storage.tables import metadata, usage_records
from imagegate.storage.usage import UsageRecord, UsageRepo


def test_the_migrated_columns_are_the_tables_columns(engine: Engine) -> None:
    """Every text column's size and every integer's width, as tables.py states them."""
    found = inspect(engine)
    for table in metadata.sorted_tables:
        migrated = {c["name"]: c["type"] for c in found.get_columns(table.name)}
        for column in table.columns:
            kind = migrated[column.name]
            if isinstance(column.type, String):
                assert getattr(kind, "length", None) == column.type.length, (table.name, column.name, kind)
            if isinstance(column.type, BigInteger):
                assert isinstance(kind, BigInteger), (table.name, column.name, kind)


def test_values_at_their_bounds_fit(engine: Engine) -> None:
    clock = ManualClock(1000.0)
    key, _ = KeyRepo(engine, clock).create(
        "é" * bounds.KEY_NAME,
        "t" * bounds.TIER,
        credit_micros=bounds.MAX_BALANCE_MICROS,
        rpm=bounds.INT32_MAX,
        multiplier_ppm=bounds.INT32_MAX,
    )
    channel = ChannelRepo(engine, clock, SecretBox("00" * 32)).add(
        "é" * bounds.CHANNEL_NAME,
        "https://" + "é" * (bounds.BASE_URL - 8),
        "k",
        ["m" * bounds.MODEL_NAME],
        priority=1_000_000,
        weight=bounds.INT32_MAX,
    )
    UsageRepo(engine).record(
        UsageRecord(
            request_id="r" * bounds.REQUEST_ID,
            key_id=key.id,
            created_at=1000.0,
            endpoint="generations",
            status=200,
            model="é" * bounds.MODEL_NAME,
            engine=f"upstream:{channel.name}",
            error_code="e" * bounds.ERROR_CODE,
            channel=channel.name,
            cost_micros=bounds.MAX_BALANCE_MICROS,
            upstream_cost_micros=bounds.INT64_MAX,
        )
    )
    claims = IdempotencyRepo(engine, clock, 3600)
    assert claims.begin(key.id, "~" * bounds.IDEMPOTENCY_KEY, "h" * 64, 60).outcome == "new"
    with engine.connect() as conn:
        engine_name = conn.execute(select(usage_records.c.engine)).scalar_one()
    assert engine_name == f"upstream:{'é' * bounds.CHANNEL_NAME}"  # whole, not cut


def test_two_huge_top_ups_leave_an_integer_balance(engine: Engine) -> None:
    """SQLite turns an integer sum past 2**63 into a REAL; the ledger never lets a balance near it."""
    clock = ManualClock(1000.0)
    key, _ = KeyRepo(engine, clock).create("rich", credit_micros=0)
    ledger = Ledger(engine, clock)
    ledger.top_up(key.id, bounds.MAX_BALANCE_MICROS)
    with pytest.raises(ValueError):
        ledger.top_up(key.id, bounds.MAX_BALANCE_MICROS)
    with pytest.raises(ValueError):
        ledger.top_up(key.id, bounds.INT64_MAX)
    typeof = "typeof" if engine.dialect.name == "sqlite" else "pg_typeof"
    with engine.connect() as conn:
        query = text(f"SELECT {typeof}(balance_micros), balance_micros FROM api_keys")
        kind, balance = conn.execute(query).one()
    assert str(kind) in ("integer", "bigint") and balance == bounds.MAX_BALANCE_MICROS
    assert ledger.ledger_sum(key.id) == bounds.MAX_BALANCE_MICROS


def test_a_reservation_larger_than_any_balance_is_refused_before_the_database(engine: Engine) -> None:
    """An amount no BIGINT holds would make the driver raise (a 500); it is only too much."""
    from imagegate.storage.ledger import InsufficientBalance

    clock = ManualClock(1000.0)
    key, _ = KeyRepo(engine, clock).create("k", credit_micros=1_000)
    with pytest.raises(InsufficientBalance):
        Ledger(engine, clock).reserve(key.id, 2**70, "r", 60)


# --- migration 0005 -------------------------------------------------------------------------


@pytest.fixture
def bare(database_url: str) -> Iterator[tuple[Engine, Config]]:
    """An unmigrated database and an Alembic config on it."""
    eng = make_engine(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    yield eng, cfg
    eng.dispose()


def _to(eng: Engine, cfg: Config, revision: str, down: bool = False) -> None:
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_0005_widens_the_engine_column_and_back(bare: tuple[Engine, Config]) -> None:
    eng, cfg = bare
    _to(eng, cfg, "0004")
    row = {
        "request_id": "r",
        "key_id": 1,
        "day": "2026-01-01",
        "created_at": 1.0,
        "endpoint": "generations",
        "status": 200,
    }
    with eng.begin() as conn:
        conn.execute(
            text("INSERT INTO api_keys (name, prefix, secret_hash, created_at) VALUES ('k', 'p', 'h', 1.0)")
        )
        conn.execute(insert(usage_records).values(**row, engine="placeholder"))
    _to(eng, cfg, "head")
    long_name = "upstream:" + "é" * bounds.CHANNEL_NAME
    with eng.begin() as conn:
        conn.execute(insert(usage_records).values(**row, engine=long_name))
        assert set(conn.execute(select(usage_records.c.engine)).scalars()) == {"placeholder", long_name}
    _to(eng, cfg, "0004", down=True)
    with eng.connect() as conn:
        kept = set(conn.execute(text("SELECT engine FROM usage_records")).scalars())
    assert kept == {"placeholder", long_name[:50]}


def test_a_configured_tier_the_column_cannot_hold_is_refused_by_name(engine: Engine, tmp_path: Path) -> None:
    from imagegate.accounts import Accounts
    from imagegate.config import Settings
    from imagegate.errors import InvalidValue

    long_tier = "t" * (bounds.TIER + 1)
    settings = Settings(data_dir=tmp_path, create_initial_key=False, tiers={long_tier: {}, "ok": {}})
    clock = ManualClock(1000.0)
    accounts = Accounts(settings, KeyRepo(engine, clock), Ledger(engine, clock), UsageRepo(engine))
    with pytest.raises(InvalidValue) as refused:
        accounts.create_key("k", long_tier, "1")
    assert refused.value.param == "tier" and "configuration" in refused.value.message
    assert accounts.create_key("k", "ok", "1")[0]["tier"] == "ok"
