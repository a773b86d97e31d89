"""The console's sessions (storage/sessions.py): only a hash of the id is stored, each has its own
CSRF token, and they end when signed out or when the clock passes their expiry."""

from __future__ import annotations

from sqlalchemy import Engine, select

from imagegate.clock import ManualClock
from imagegate.storage.sessions import SessionRepo
from imagegate.storage.tables import console_sessions


def test_sessions_are_hashed_and_carry_their_own_token(sqlite_engine: Engine) -> None:
    repo = SessionRepo(sqlite_engine, ManualClock(), ttl_s=3600)
    first_id, first = repo.create("operator", None)
    second_id, second = repo.create("key", 7)
    assert first.csrf_token != second.csrf_token and first_id != second_id
    with sqlite_engine.connect() as conn:
        stored = [row.id_hash for row in conn.execute(select(console_sessions))]
    assert first_id not in stored and second_id not in stored and len(stored) == 2
    assert repo.get(second_id) == second and second.key_id == 7
    assert repo.get("not-a-session") is None


def test_sessions_end_at_expiry_and_on_sign_out(sqlite_engine: Engine) -> None:
    clock = ManualClock()
    repo = SessionRepo(sqlite_engine, clock, ttl_s=3600)
    kept_id, _ = repo.create("key", 1)
    gone_id, _ = repo.create("key", 2)
    repo.delete(gone_id)
    assert repo.get(gone_id) is None and repo.get(kept_id) is not None
    clock.advance(3599)
    assert repo.get(kept_id) is not None
    stale_id, _ = repo.create("operator", None)
    clock.advance(1)
    assert repo.get(kept_id) is None  # expired: refused, and deleted as it is met
    assert repo.purge() == 0  # ... so nothing left to purge but the live one
    assert repo.get(stale_id) is not None
    clock.advance(3600)
    assert repo.purge() == 1


def test_an_operator_session_holds_to_the_admin_key_it_began_with(sqlite_engine: Engine) -> None:
    repo = SessionRepo(sqlite_engine, ManualClock(), ttl_s=3600)
    session_id, _ = repo.create("operator", None, "sk-admin-one")
    session = repo.get(session_id)
    assert session is not None and session.admin_key_hash is not None
    assert session.signed_in_with("sk-admin-one")
    assert not session.signed_in_with("sk-admin-two")  # rotated: the console asks to sign in again
    holder_id, _ = repo.create("key", 3)
    holder = repo.get(holder_id)
    assert holder is not None and not holder.signed_in_with("sk-admin-one")
