"""The bytes of an uploaded or fetched file, held in memory or in a spooled temporary file.

A multipart upload stays in the temporary file its parser wrote (starlette spools parts over
1 MiB to disk), so relaying a 20 MB image to a provider never holds it in memory: it is
checked from its header, hashed in chunks and streamed to the upstream in chunks.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import IO

CHUNK = 256 * 1024


class Payload:
    __slots__ = ("_data", "_file", "_sha256", "size")

    def __init__(self, data: bytes | None = None, *, file: IO[bytes] | None = None) -> None:
        if (data is None) == (file is None):
            raise TypeError("a Payload holds either bytes or a file")
        self._data = data
        self._file = file
        self._sha256: bytes | None = None
        if file is not None:
            self.size = file.seek(0, os.SEEK_END)
            file.seek(0)
        else:
            self.size = len(data)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.size

    def head(self, n: int) -> bytes:
        """The first `n` bytes (fewer when the payload is shorter)."""
        if self._data is not None:
            return self._data[:n]
        assert self._file is not None
        self._file.seek(0)
        return self._file.read(n)

    def read(self) -> bytes:
        """All of it, in memory: for a local engine that decodes the pixels anyway."""
        return self.head(self.size) if self._file is not None else self._data  # type: ignore[return-value]

    def open(self) -> IO[bytes]:
        """A reader from the start. For a file, a view without fileno(): httpx then takes the
        length from seek/tell instead of fstat, which would roll an in-memory spool onto disk."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._file is not None
        self._file.seek(0)
        return _Reader(self._file)

    def chunks(self) -> Iterator[bytes]:
        reader = self.open()
        while chunk := reader.read(CHUNK):
            yield chunk

    def sha256(self) -> bytes:
        if self._sha256 is None:
            h = hashlib.sha256()
            for chunk in self.chunks():
                h.update(chunk)
            self._sha256 = h.digest()
        return self._sha256

    def relayable(self) -> bytes | IO[bytes]:
        """What httpx should send: the bytes themselves, or a reader it streams in 64 KiB chunks."""
        return self._data if self._data is not None else self.open()


class _Reader(io.RawIOBase):
    """Reads, seeks and tells on a file it does not own (closing it leaves the file open)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        raise OSError("not a real file descriptor")  # see Payload.open()
