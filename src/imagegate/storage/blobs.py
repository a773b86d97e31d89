"""Image storage: content-addressed blobs, indexed with an expiry in the `images` table.

The bytes live in a `BlobBackend`: a directory on this machine (`LocalDirectory`, the default)
or an S3-compatible bucket (storage/s3.py `S3Bucket`), each blob under the key
<sha[:2]>/<sha>.<ext>. Everything else is `ImageStore`'s, whichever the backend: the index rows
are the source of truth (an image is served while its row is unexpired), storing the same bytes
twice extends the row's expiry, and the sweeper deletes the rows whose retention has passed and
then their blobs.

`put` = `write` (hash, blob: no database) + `index` (the row, on the caller's connection), so
the end of a request indexes its images in the transaction that settles it (storage/finish.py).
The row is one upsert where the backend has one (SQLite, PostgreSQL): an UPDATE, and for new
bytes a SAVEPOINT and an INSERT, took 4 statements.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from imagegate.clock import Clock
from imagegate.config import Settings
from imagegate.storage import direct_io as direct_io_
from imagegate.storage.statements import Statement
from imagegate.storage.tables import images

log = logging.getLogger("imagegate.storage")


@dataclass(frozen=True, slots=True)
class StoredImage:
    sha256: str
    ext: str
    media_type: str
    size_bytes: int

    @property
    def name(self) -> str:
        return f"{self.sha256}.{self.ext}"

    @property
    def key(self) -> str:
        """Where its bytes are in the backend."""
        return blob_key(self.sha256, self.ext)


def blob_key(sha256: str, ext: str) -> str:
    return f"{sha256[:2]}/{sha256}.{ext}"


class Readable(Protocol):
    """A blob's bytes being read: a file, or an S3 object's body."""

    def read(self, size: int | None = ..., /) -> bytes:
        """Up to `size` bytes (none given: the rest); b"" at the end."""
        ...

    def close(self) -> None: ...


class BlobBackend(Protocol):
    """Where blobs' bytes live, by key: `LocalDirectory`, storage/s3.py `S3Bucket`.

    Blobs are content-addressed, so a key's bytes never change: writing a key again stores the
    same bytes. The backend knows nothing of expiry; `ImageStore` and its rows do.
    """

    @property
    def remote(self) -> bool:
        """Its calls wait on the network: callers keep them off the database's thread."""
        ...

    def put(self, key: str, data: bytes, media_type: str) -> None:
        """Store `data` under `key`, whole or not at all: a reader never sees part of it."""
        ...

    def open(self, key: str) -> Readable | None:
        """The blob's bytes, to read in chunks and close; None when there is none."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Remove these blobs; one that is not there is no error."""
        ...

    def presigned_url(self, key: str, ttl_s: int) -> str | None:
        """A URL of the store's own that serves the blob for `ttl_s` seconds; None: imagegate
        serves it (a local directory, or a bucket whose presigned URLs are off)."""
        ...


def _create(path: str, flags: int) -> int:
    """A new file's descriptor: its folder made if missing, a file of that name left by a
    crashed process that had this pid replaced."""
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:  # the folder's first blob (or removed since)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o600)
    except FileExistsError:
        os.unlink(path)
        return os.open(path, flags, 0o600)


class LocalDirectory:
    """Blobs as files under one directory (the default: <data_dir>/blobs)."""

    remote = False

    def __init__(self, root: Path, direct_io: bool = True) -> None:
        self.root = root
        self._names = itertools.count()  # temporary files' names: this process's pid and a count
        # Big blobs skip the page cache (storage/direct_io.py) until the file system refuses it.
        self.direct_io = direct_io and bool(direct_io_.FLAG)

    def path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes, media_type: str) -> None:  # noqa: ARG002 (files have none)
        path = f"{self.root}/{key}"
        if os.path.exists(path):  # the same bytes (content-addressed)
            return
        # Write then rename, so a reader never sees a half-written file (nor, after a crash, a
        # part of one under a blob's name). No mkdir nor mkstemp's random names each time: 0.1 ms
        # of a small relayed image's 3 (py-spy).
        tmp = f"{os.path.dirname(path)}/.tmp-{os.getpid()}-{next(self._names)}"
        try:
            if not (self.direct_io and len(data) >= direct_io_.MIN_BYTES and self._direct(tmp, data)):
                with os.fdopen(_create(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as f:
                    f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _direct(self, tmp: str, data: bytes) -> bool:
        if direct_io_.write(tmp, data, _create):
            return True
        self.direct_io = False
        log.info("%s does not take O_DIRECT writes: blobs go through the page cache", self.root)
        return False

    def open(self, key: str) -> Readable | None:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError:
            return None

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, ttl_s: int) -> str | None:  # noqa: ARG002
        return None


def open_backend(settings: Settings) -> BlobBackend:
    """`IMAGEGATE_BLOB_STORE`: unset, <data_dir>/blobs; s3://bucket/prefix, that bucket."""
    if settings.blob_store is None:
        return LocalDirectory(settings.data_dir / "blobs", settings.blob_direct_io)
    from imagegate.storage.s3 import S3Bucket  # boto3 takes ~0.3 s to import: only when used

    return S3Bucket.from_settings(settings)


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
    def __init__(self, blobs: BlobBackend, engine: Engine, clock: Clock, retention_s: int) -> None:
        self.blobs = blobs
        self.engine = engine
        self.clock = clock
        self.retention_s = retention_s
        self._upsert = _upsert(engine.dialect.name)

    @property
    def remote(self) -> bool:
        """The bytes are across the network (`BlobBackend.remote`)."""
        return self.blobs.remote

    def put(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        stored = self.write(data, ext, media_type, sha256)
        with self.engine.begin() as conn:
            self.index(conn, stored)
        return stored

    def write(self, data: bytes, ext: str, media_type: str, sha256: str | None = None) -> StoredImage:
        """The blob alone; not findable (nor swept) until `index`ed. `sha256`: the data's hash
        (hex) when the caller computed it already (provenance/embed.py does, while sealing)."""
        digest = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
        stored = StoredImage(digest, ext, media_type, len(data))
        self.blobs.put(stored.key, data, media_type)
        return stored

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

    def find(self, sha256: str, ext: str) -> StoredImage | None:
        """A stored, unexpired image, by its row alone (the database; `open` reads the bytes)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(images).where(images.c.sha256 == sha256)).first()
        if row is None or row.ext != ext or row.expires_at <= self.clock.now():
            return None
        return StoredImage(sha256, ext, row.media_type, row.size_bytes)

    def open(self, image: StoredImage) -> Readable | None:
        """A found image's bytes, to read in chunks and close (None: its blob is gone)."""
        return self.blobs.open(image.key)

    def read(self, sha256: str, ext: str) -> bytes | None:
        """A stored, unexpired image's bytes, whole (replays: they become b64_json anyway)."""
        found = self.find(sha256, ext)
        body = self.open(found) if found is not None else None
        if body is None:
            return None
        try:
            return body.read()
        finally:
            body.close()

    def presigned_url(self, name: str, ttl_s: int) -> str | None:
        """The backend's own URL of the image named `name` (`StoredImage.name`), where it has one."""
        sha, _, ext = name.partition(".")
        return self.blobs.presigned_url(blob_key(sha, ext), ttl_s)

    def expire(self) -> list[str]:
        """Delete the rows whose retention has passed; the keys of their blobs, for `drop`."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            rows = conn.execute(select(images.c.sha256, images.c.ext).where(images.c.expires_at <= now)).all()
            conn.execute(delete(images).where(images.c.expires_at <= now))
        return [blob_key(sha, ext) for sha, ext in rows]

    def drop(self, keys: Sequence[str]) -> None:
        """Delete the blobs of the rows `expire` deleted (rows first: nothing is served, nor
        found, whose blob is going)."""
        self.blobs.delete(keys)

    def sweep(self) -> int:
        """Delete every image whose retention has passed; returns how many."""
        keys = self.expire()
        self.drop(keys)
        return len(keys)
