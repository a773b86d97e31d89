"""Idempotency-Key: a retry with the same key and body gets the original result, charged once.

`begin` claims the key for a request (a primary-key insert, so exactly one of any number
of concurrent requests wins). The winner runs and calls `complete` with its response, or
`abandon` on failure (its charge was refunded, so a retry may run again). The others see
the stored response (replay), a different body (conflict) or a request still running.

A pending claim expires after `pending_s` (the reservation timeout) unless its request renews
it, as its reservation: when the process running it died, a retry runs again once the
reservation would have been swept, not a day later. A completed claim is kept `ttl_s`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from imagegate.clock import Clock
from imagegate.storage.tables import idempotency

Outcome = Literal["new", "replay", "conflict", "in_progress"]


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Outcome
    response: dict[str, Any] | None = None


class IdempotencyRepo:
    def __init__(self, engine: Engine, clock: Clock, ttl_s: int) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl_s = ttl_s

    def begin(self, key_id: int, idem_key: str, body_hash: str, pending_s: float | None = None) -> Claim:
        now = self.clock.now()
        pending_s = self.ttl_s if pending_s is None else pending_s
        where = (idempotency.c.key_id == key_id, idempotency.c.idem_key == idem_key)
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(idempotency).values(
                            key_id=key_id,
                            idem_key=idem_key,
                            body_hash=body_hash,
                            status="pending",
                            created_at=now,
                            expires_at=now + pending_s,
                        )
                    )
                return Claim("new")
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                # An expired claim is forgotten, then the insert is tried once more.
                if conn.execute(delete(idempotency).where(*where, idempotency.c.expires_at <= now)).rowcount:
                    continue
                row = conn.execute(select(idempotency).where(*where)).first()
            if row is None:
                continue
            if row.body_hash != body_hash:
                return Claim("conflict")
            if row.status == "done":
                return Claim("replay", json.loads(row.response))
            return Claim("in_progress")
        return Claim("in_progress")

    def complete(self, key_id: int, idem_key: str, response: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(idempotency)
                .where(idempotency.c.key_id == key_id, idempotency.c.idem_key == idem_key)
                .values(
                    status="done", response=json.dumps(response), expires_at=self.clock.now() + self.ttl_s
                )
            )

    def renew(self, key_id: int, idem_key: str, pending_s: float) -> None:
        """The claim's request is still running: it stays pending `pending_s` more."""
        with self.engine.begin() as conn:
            conn.execute(
                update(idempotency)
                .where(
                    idempotency.c.key_id == key_id,
                    idempotency.c.idem_key == idem_key,
                    idempotency.c.status == "pending",
                )
                .values(expires_at=self.clock.now() + pending_s)
            )

    def abandon(self, key_id: int, idem_key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(idempotency).where(
                    idempotency.c.key_id == key_id,
                    idempotency.c.idem_key == idem_key,
                    idempotency.c.status == "pending",
                )
            )

    def sweep(self) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(delete(idempotency).where(idempotency.c.expires_at <= self.clock.now())).rowcount
            )
