"""Secrets at rest (upstream channel keys): AES-256-GCM with a key from configuration.

The key comes from IMAGEGATE_SECRET_KEY (64 hex characters) or is generated once into
<data_dir>/secret-key. Each value gets a fresh 96-bit nonce; the stored form is
"v1:" + base64(nonce + ciphertext + tag). Losing the key loses the stored secrets.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1:"


class SecretBox:
    def __init__(self, key_hex: str) -> None:
        key = bytes.fromhex(key_hex)
        if len(key) != 32:
            raise ValueError("the secret key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, key_hex: str | None, data_dir: Path) -> SecretBox:
        if key_hex:
            return cls(key_hex)
        path = data_dir / "secret-key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return cls(path.read_text().strip())

    @classmethod
    def missing(cls) -> SecretBox:
        """A box without a key (none configured, none in the data directory): it refuses to seal
        or open, so a command that does not own the data directory never generates one."""
        return _Missing()

    def seal(self, plaintext: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), b"imagegate")
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise ValueError("not a sealed secret")
        raw = base64.b64decode(stored[len(PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], b"imagegate").decode()
        except InvalidTag as exc:
            raise ValueError("this secret key cannot open the value (key changed?)") from exc


class _Missing(SecretBox):
    def __init__(self) -> None:  # no key: nothing to set up
        pass

    def seal(self, plaintext: str) -> str:  # noqa: ARG002 - refuses whatever it is given
        raise RuntimeError("no channel secret key (IMAGEGATE_SECRET_KEY or <data_dir>/secret-key)")

    def open(self, stored: str) -> str:  # noqa: ARG002 - refuses whatever it is given
        raise RuntimeError("no channel secret key (IMAGEGATE_SECRET_KEY or <data_dir>/secret-key)")
