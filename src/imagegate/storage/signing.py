"""Signed, expiring image URLs: HMAC-SHA256 over the file name and the expiry time; or, where the
blob store has URLs of its own (a bucket's presigned URLs, storage/s3.py), those."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from imagegate.clock import Clock


def load_or_create_secret(path: Path) -> str:
    """The URL-signing secret kept in the data directory, made on first use. Several processes
    starting at once (`serve --workers N`) agree on one: the file appears whole, by a link that
    only the first of them makes, and the others read it."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".url-secret-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def sign(secret: str, name: str, expires: int) -> str:
    msg = f"{name}:{expires}".encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def verify(secret: str, name: str, expires: int, signature: str, now: float) -> bool:
    """True when the signature matches and has not expired."""
    if expires < now:
        return False
    # Bytes, not str: compare_digest raises TypeError on non-ASCII str (a client could send one).
    given = signature.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(sign(secret, name, expires).encode(), given)


class UrlSigner:
    """Makes and checks the signed URLs under which stored images are served."""

    PATH = "/v1/images/files/"

    def __init__(
        self, secret: str, ttl_s: int, clock: Clock, direct: Callable[[str, int], str | None] | None = None
    ) -> None:
        self.secret = secret
        self.ttl_s = ttl_s
        self.clock = clock
        # (name, ttl_s) -> the blob store's own URL, or None (storage/blobs.py ImageStore.presigned_url)
        self.direct = direct

    def url(self, base_url: str, name: str) -> str:
        if self.direct is not None and (url := self.direct(name, self.ttl_s)) is not None:
            return url
        expires = int(self.clock.now()) + self.ttl_s
        signature = sign(self.secret, name, expires)
        return f"{base_url.rstrip('/')}{self.PATH}{name}?expires={expires}&signature={signature}"

    def check(self, name: str, expires: int, signature: str) -> bool:
        return verify(self.secret, name, expires, signature, self.clock.now())
