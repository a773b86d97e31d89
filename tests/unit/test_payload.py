"""Payload: the bytes of an upload, in memory or in its spooled temporary file."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterator

import pytest

from imagegate.payload import CHUNK, Payload

Spool = Callable[..., "tempfile.SpooledTemporaryFile[bytes]"]


@pytest.fixture
def spooled() -> Iterator[Spool]:
    """Makes spooled temporary files holding some bytes (as the multipart parser does); closes them."""
    with contextlib.ExitStack() as stack:

        def make(data: bytes, max_size: int = 1024) -> tempfile.SpooledTemporaryFile[bytes]:
            file = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=max_size))
            file.write(data)
            return file

        yield make


@pytest.mark.parametrize("size", [0, 10, CHUNK - 1, CHUNK, 3 * CHUNK + 7])
def test_bytes_and_files_read_alike(size: int, spooled: Spool) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for payload in (Payload(data), Payload(file=spooled(data))):
        assert payload.size == size
        assert payload.head(5) == data[:5]
        assert b"".join(payload.chunks()) == data
        assert payload.sha256() == hashlib.sha256(data).digest()
        assert payload.open().read() == data  # from the start, whatever was read before


def test_exactly_one_of_bytes_and_file(spooled: Spool) -> None:
    with pytest.raises(TypeError):
        Payload()
    with pytest.raises(TypeError):
        Payload(b"x", file=spooled(b"x"))


def test_reading_a_spooled_upload_keeps_it_in_memory(spooled: Spool) -> None:
    """Checking, hashing and relaying an upload under the spool size never rolls it onto disk,
    and every read starts from the beginning (a retry sends the same bytes)."""
    data = b"\x89PNG" + bytes(5000)
    file = spooled(data, max_size=10_000)
    payload = Payload(file=file)
    assert payload.head(4) == b"\x89PNG" and payload.sha256() == hashlib.sha256(data).digest()
    assert b"".join(payload.chunks()) == data == b"".join(payload.chunks())
    assert not file._rolled  # type: ignore[attr-defined]
