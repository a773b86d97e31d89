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

    def head(self, n: int) -> bytes:
        """The first `n` bytes (fewer when the payload is shorter)."""
        return self._data[:n] if self._data is not None else self.open().read(n)

    def open(self) -> IO[bytes]:
        """A reader from the start (the file itself: Pillow and the relay never close it)."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._file is not None
        self._file.seek(0)
        return self._file

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
