"""Image storage: content-addressed blobs in the data directory, indexed with an expiry.

A blob lives at blobs/<sha[:2]>/<sha>.<ext>. Storing the same bytes twice writes once and
extends the expiry. The sweeper deletes rows and files whose retention has passed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from imagegate.clock import Clock
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


class ImageStore:
    def __init__(self, root: Path, engine: Engine, clock: Clock, retention_s: int) -> None:
        self.root = root
        self.engine = engine
        self.clock = clock
        self.retention_s = retention_s

    def path(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def put(self, data: bytes, ext: str, media_type: str) -> StoredImage:
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha, ext)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees a half-written file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        now = self.clock.now()
        expires = now + self.retention_s
        values = dict(ext=ext, media_type=media_type, size_bytes=len(data), expires_at=expires)
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(images).where(images.c.sha256 == sha).values(**values)
            ).rowcount
            if not updated:
                try:
                    with conn.begin_nested():
                        conn.execute(images.insert().values(sha256=sha, created_at=now, **values))
                except IntegrityError:  # a concurrent writer stored the same bytes first
                    conn.execute(update(images).where(images.c.sha256 == sha).values(**values))
        return StoredImage(sha, ext, media_type, len(data))

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
            rows = conn.execute(
                select(images.c.sha256, images.c.ext).where(images.c.expires_at <= now)
            ).all()
            conn.execute(delete(images).where(images.c.expires_at <= now))
        for sha, ext in rows:
            self.path(sha, ext).unlink(missing_ok=True)
        return len(rows)
