"""Image storage: content-addressed blobs in the data directory, indexed with an expiry.

A blob lives at blobs/<sha[:2]>/<sha>.<ext>. Storing the same bytes twice writes once and
extends the expiry. The sweeper deletes rows and files whose retention has passed.

`put` = `write` (hash, file: no database) + `index` (the row, on the caller's connection), so
the end of a request indexes its images in the transaction that settles it (storage/finish.py).
The row is one upsert where the backend has one (SQLite, PostgreSQL): an UPDATE, and for new
bytes a SAVEPOINT and an INSERT, took 4 statements.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from imagegate.clock import Clock
from imagegate.storage.statements import Statement
from imagegate.storage.tables import images


@dataclass(frozen=True, slots=True)
class StoredImage:
    sha256: str
    ext: str
    media_type: str
    size_bytes: int

    @property
    def name(self) -> str:
        return f"{self.sha256}.{self.ext}"


_REFRESHED = ("ext", "media_type", "size_bytes", "expires_at")  # a second store keeps created_at
_TOUCH = update(images).where(images.c.sha256 == bindparam("sha"))


def _upsert(dialect: str) -> Statement | None:
    """INSERT ... ON CONFLICT (sha256) DO UPDATE, or None where the dialect has none here."""
    module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect)
    if module is None:
        return None
    stmt = module.insert(images).inline()
    return Statement(
        stmt.on_conflict_do_update(
            index_elements=[images.c.sha256], set_={name: stmt.excluded[name] for name in _REFRESHED}
        ),
        ("sha256", "created_at", *_REFRESHED),
    )


class ImageStore:
    def __init__(self, root: Path, engine: Engine, clock: Clock, retention_s: int) -> None:
        self.root = root
        self.engine = engine
        self.clock = clock
        self.retention_s = retention_s
        self._upsert = _upsert(engine.dialect.name)

    def path(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def put(self, data: bytes, ext: str, media_type: str) -> StoredImage:
        stored = self.write(data, ext, media_type)
        with self.engine.begin() as conn:
            self.index(conn, stored)
        return stored

    def write(self, data: bytes, ext: str, media_type: str) -> StoredImage:
        """The blob file alone; not findable (nor swept) until `index`ed."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha, ext)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees a half-written file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return StoredImage(sha, ext, media_type, len(data))

    def index(self, conn: Connection, stored: StoredImage) -> None:
        """The row of a written blob (new, or its expiry extended), in the caller's transaction."""
        now = self.clock.now()
        values = {
            "ext": stored.ext,
            "media_type": stored.media_type,
            "size_bytes": stored.size_bytes,
            "expires_at": now + self.retention_s,
        }
        if self._upsert is not None:
            self._upsert.run(conn, {"sha256": stored.sha256, "created_at": now, **values})
            return
        if conn.execute(_TOUCH, {"sha": stored.sha256, **values}).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(images.insert(), {"sha256": stored.sha256, "created_at": now, **values})
        except IntegrityError:  # a concurrent writer stored the same bytes first
            conn.execute(_TOUCH, {"sha": stored.sha256, **values})

    def find(self, sha256: str, ext: str) -> tuple[Path, str] | None:
        """The file and media type of a stored, unexpired image."""
        with self.engine.connect() as conn:
            row = conn.execute(select(images).where(images.c.sha256 == sha256)).first()
        if row is None or row.ext != ext or row.expires_at <= self.clock.now():
            return None
        path = self.path(sha256, ext)
        return (path, row.media_type) if path.exists() else None

    def sweep(self) -> int:
        """Delete every image whose retention has passed; returns how many."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            rows = conn.execute(select(images.c.sha256, images.c.ext).where(images.c.expires_at <= now)).all()
            conn.execute(delete(images).where(images.c.expires_at <= now))
        for sha, ext in rows:
            self.path(sha, ext).unlink(missing_ok=True)
        return len(rows)
