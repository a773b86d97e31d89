"""The web console's sessions: a random id in an HttpOnly cookie, its SHA-256 and the rest here.

A session is the operator's (signed in with the admin key) or one API key's; it carries its own
CSRF token, which every state-changing console call must echo in a header, and it ends at
`expires_at` (from the injectable clock) or when signed out. Expired rows are deleted as they are
met, and in bulk by `purge`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, delete, insert, select

from imagegate.clock import Clock
from imagegate.storage.tables import console_sessions

Role = Literal["operator", "key"]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    role: Role
    key_id: int | None
    csrf_token: str
    expires_at: float
    admin_key_hash: str | None = None  # the operator's: see `signed_in_with`

    def signed_in_with(self, admin_key: str) -> bool:
        """Whether this operator session was opened with `admin_key` (false once it changed)."""
        return self.admin_key_hash is not None and hmac.compare_digest(self.admin_key_hash, _hash(admin_key))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class SessionRepo:
    def __init__(self, engine: Engine, clock: Clock, ttl_s: float) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl_s = ttl_s

    def create(
        self, role: Role, key_id: int | None, admin_key: str | None = None
    ) -> tuple[str, ConsoleSession]:
        """A new session (the operator's with the admin key it signed in with, a key holder's with
        the key's id); its id (the cookie's value) is returned here only."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock.now()
        admin_hash = _hash(admin_key) if admin_key is not None else None
        session = ConsoleSession(role, key_id, secrets.token_urlsafe(32), now + self.ttl_s, admin_hash)
        with self.engine.begin() as conn:
            conn.execute(
                insert(console_sessions).values(
                    id_hash=_hash(session_id),
                    role=role,
                    key_id=key_id,
                    admin_key_hash=admin_hash,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        return session_id, session

    def get(self, session_id: str) -> ConsoleSession | None:
        """The live session with this id, or None (unknown, signed out or expired)."""
        c = console_sessions.c
        with self.engine.connect() as conn:
            row = conn.execute(select(console_sessions).where(c.id_hash == _hash(session_id))).first()
        if row is None:
            return None
        if row.expires_at <= self.clock.now():
            self.delete(session_id)
            return None
        return ConsoleSession(row.role, row.key_id, row.csrf_token, row.expires_at, row.admin_key_hash)

    def delete(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == _hash(session_id)))

    def purge(self) -> int:
        """Delete the expired sessions; how many."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(console_sessions).where(console_sessions.c.expires_at <= self.clock.now())
            )
        return int(result.rowcount)
