"""storage/statements.py: a Statement on the driver's cursor does what `Connection.execute` does,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError

from imagegate.clock import ManualClock
from imagegate.storage import keys, ledger
from imagegate.storage.keys import KeyRepo, hash_secret
from imagegate.storage.statements import Statement
from imagegate.storage.tables import api_keys, reservations


def _reservation(rid: str, key_id: int) -> dict[str, object]:
    return {
        "id": rid,
        "key_id": key_id,
        "request_id": "req",
        "amount_micros": 5,
        "status": "held",
        "created_at": 1.5,
        "expires_at": 2,
    }


def test_a_row_is_the_one_execute_returns(engine: Engine) -> None:
    key, secret = KeyRepo(engine, ManualClock()).create("app", "tier1", credit_micros=7, allowed_models=["m"])
    params = {"secret_hash": hash_secret(secret)}
    with engine.connect() as conn:
        row = keys._BY_HASH.first(conn, params)
        expected = conn.execute(keys._BY_HASH.clause, params).first()
        assert expected is not None
        assert row == dict(expected._mapping)
        assert [type(v) for v in row.values()] == [type(v) for v in expected]  # floats stay floats
        assert keys._BY_HASH.first(conn, {"secret_hash": "nope"}) is None
    assert row["id"] == key.id and row["balance_micros"] == 7


def test_writes_count_rows_and_keep_the_statements_own_values(engine: Engine) -> None:
    key, _ = KeyRepo(engine, ManualClock()).create("app", credit_micros=10)
    with engine.begin() as conn:
        assert ledger._HOLD.run(conn, {"k": key.id, "amount": 4}) == 1
        assert ledger._HOLD.run(conn, {"k": key.id, "amount": 7}) == 0  # 6 left: not enough
        ledger._NEW_RESERVATION.run(conn, _reservation("r1", key.id))
        # `status == 'held'` is the statement's own value: the second close matches nothing.
        assert ledger._CLOSE.run(conn, {"rid": "r1", "new_status": "settled", "charged": 3}) == 1
        assert ledger._CLOSE.run(conn, {"rid": "r1", "new_status": "released", "charged": 0}) == 0
    with engine.connect() as conn:
        assert conn.execute(select(api_keys.c.balance_micros)).scalar_one() == 6
        row = conn.execute(select(reservations)).one()._mapping
    assert (row["status"], row["charged_micros"], row["expires_at"]) == ("settled", 3, 2.0)


def test_a_write_on_a_fresh_connection_is_committed_by_commit_and_only_then(engine: Engine) -> None:
    key, _ = KeyRepo(engine, ManualClock()).create("app", credit_micros=10)
    with engine.connect() as conn:
        ledger._CREDIT.run(conn, {"k": key.id, "amount": 5})
    with engine.connect() as conn:
        ledger._CREDIT.run(conn, {"k": key.id, "amount": 1})
        conn.commit()
    assert KeyRepo(engine, ManualClock()).get(key.id).balance_micros == 11  # type: ignore[union-attr]


def test_driver_errors_are_sqlalchemy_errors(engine: Engine) -> None:
    key, _ = KeyRepo(engine, ManualClock()).create("app")
    with engine.begin() as conn:
        ledger._NEW_RESERVATION.run(conn, _reservation("r1", key.id))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        ledger._NEW_RESERVATION.run(conn, _reservation("r1", key.id))
    with engine.connect() as conn:
        assert conn.execute(select(reservations.c.id)).scalars().all() == ["r1"]


def test_what_the_cursor_cannot_run_goes_through_execute(engine: Engine) -> None:
    first, _ = KeyRepo(engine, ManualClock()).create("a")
    KeyRepo(engine, ManualClock()).create("b")
    by_ids = Statement(select(api_keys.c.name).where(api_keys.c.id.in_(bindparam("ids", expanding=True))))
    with engine.connect() as conn:
        assert by_ids.first(conn, {"ids": [first.id]}) == {"name": "a"}
