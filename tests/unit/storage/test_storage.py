"""Keys, the image store and URL signing on a real SQLite database with a manual clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.clock import ManualClock
from imagegate.storage.blobs import ImageStore, LocalDirectory
from imagegate.storage.db import make_engine, migrate
from imagegate.storage.keys import KeyRepo, hash_secret
from imagegate.storage.signing import UrlSigner, sign, verify


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert migrate(eng) is True
    assert migrate(eng) is False  # idempotent; reports the database as not new
    yield eng
    eng.dispose()


def test_keys_are_stored_hashed(engine) -> None:  # type: ignore[no-untyped-def]
    repo = KeyRepo(engine, ManualClock())
    key, secret = repo.create("app", tier="tier2")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT prefix, secret_hash FROM api_keys").all()
    assert rows == [(secret[:12], hash_secret(secret))]
    assert secret not in str(rows)
    assert repo.authenticate(secret) == key
    assert repo.authenticate(secret + "x") is None
    assert repo.revoke(str(key.id)) is not None
    assert repo.authenticate(secret) is None
    assert repo.revoke("999") is None


def test_store_dedupes_extends_and_sweeps(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    store = ImageStore(LocalDirectory(tmp_path / "blobs"), engine, clock, retention_s=100)
    first = store.put(b"png-bytes", "png", "image/png")
    clock.advance(60)
    again = store.put(b"png-bytes", "png", "image/png")  # same content: one file, later expiry
    assert first == again
    assert len(list((tmp_path / "blobs").rglob("*.png"))) == 1
    clock.advance(60)  # 120 s after the first put, 60 s after the second
    assert store.find(first.sha256, "png") is not None
    assert store.sweep() == 0
    assert store.find(first.sha256, "jpeg") is None  # the extension is part of the name
    clock.advance(41)
    assert store.find(first.sha256, "png") is None
    assert store.sweep() == 1
    assert not (tmp_path / "blobs" / first.key).exists()


def test_signer_rejects_tampering_and_expiry() -> None:
    clock = ManualClock()
    signer = UrlSigner("s3cret", ttl_s=10, clock=clock)
    url = signer.url("http://h", "abc.png")
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    expires, sig = int(query["expires"]), query["signature"]
    assert signer.check("abc.png", expires, sig)
    assert not signer.check("abd.png", expires, sig)
    assert not signer.check("abc.png", expires + 1, sig)
    clock.advance(11)
    assert not signer.check("abc.png", expires, sig)


@given(st.text(), st.integers(0, 2**40), st.text())
def test_only_the_true_signature_verifies(name: str, expires: int, other: str) -> None:
    good = sign("k", name, expires)
    assert verify("k", name, expires, good, now=0)
    assert verify("k", name, expires, other, now=0) == (other == good)
    assert not verify("other-key", name, expires, good, now=0)
