"""API keys: only a SHA-256 of each secret is stored, plus a short prefix for display."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select, update

from imagegate.clock import Clock
from imagegate.storage.tables import api_keys

SECRET_PREFIX = "sk-ig-"
_ALPHABET = string.ascii_letters + string.digits
PREFIX_LEN = len(SECRET_PREFIX) + 6


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    tier: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_secret(secret: str) -> str:
    # Secrets carry ~238 bits of randomness, so a fast hash is safe (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))


class KeyRepo:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def create(self, name: str, tier: str = "free") -> tuple[ApiKey, str]:
        """Create a key; the secret is returned once and never stored."""
        secret = new_secret()
        now = self.clock.now()
        with self.engine.begin() as conn:
            key_id = conn.execute(
                insert(api_keys).values(
                    name=name,
                    prefix=secret[:PREFIX_LEN],
                    secret_hash=hash_secret(secret),
                    tier=tier,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return ApiKey(key_id, name, secret[:PREFIX_LEN], tier, now, None), secret

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_keys).where(api_keys.c.secret_hash == hash_secret(secret))
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        return _key(row)

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
        return [_key(r) for r in rows]

    def revoke(self, ident: str) -> ApiKey | None:
        """Revoke by numeric id or by displayed prefix; returns the key, or None if unknown."""
        where = (
            api_keys.c.id == int(ident) if ident.isdigit() else api_keys.c.prefix == ident
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(where, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )
            row = conn.execute(select(api_keys).where(where)).first()
        return _key(row) if row is not None else None

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(api_keys)).scalar_one())


def _key(row: object) -> ApiKey:
    r = row._mapping  # type: ignore[attr-defined]
    return ApiKey(r["id"], r["name"], r["prefix"], r["tier"], r["created_at"], r["revoked_at"])
