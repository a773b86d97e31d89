"""Big blobs are written past the page cache (storage/direct_io.py): the same bytes, whatever
their length; small ones, and a file system that refuses O_DIRECT, the usual way."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from imagegate.storage import direct_io
from imagegate.storage.blobs import LocalDirectory

pytestmark = pytest.mark.skipif(
    not direct_io.FLAG, reason="O_DIRECT is Linux's: elsewhere every write is buffered"
)


@pytest.mark.parametrize(
    "size", [direct_io.MIN_BYTES - 1, direct_io.MIN_BYTES, 300_001, 1_134_446, 3 * (1 << 20) + 1]
)
def test_a_blob_reads_back_as_written_whatever_its_length(tmp_path: Path, size: int) -> None:
    blobs = LocalDirectory(tmp_path)
    data = os.urandom(size)
    blobs.put("ab/abc.png", data, "image/png")
    assert (tmp_path / "ab" / "abc.png").read_bytes() == data  # cut back from its padded blocks
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["abc.png"]  # no temporary file left
    assert blobs.direct_io  # this file system took O_DIRECT


def test_buffers_are_lent_again_and_never_to_two_writers(tmp_path: Path) -> None:
    buffers = direct_io.AlignedBuffers()
    with buffers.take(5000) as first:
        with buffers.take(5000) as second:
            assert first is not second  # both lent at once
    with buffers.take(1 << 20) as again:
        assert again in (first, second)  # a returned one, its pages already touched
    with buffers.take(3 << 20) as bigger:
        assert len(bigger) >= 3 << 20 and bigger not in (first, second)


def test_a_file_system_that_refuses_o_direct_gets_buffered_writes(tmp_path: Path) -> None:
    opened: list[int] = []

    def refusing(path: str, flags: int) -> int:
        opened.append(flags)
        raise OSError(errno.EINVAL, "Invalid argument", path)

    assert not direct_io.write(str(tmp_path / "x"), b"y" * direct_io.MIN_BYTES, refusing)
    assert opened and opened[0] & direct_io.FLAG
    assert not (tmp_path / "x").exists()


def test_without_direct_io_every_blob_is_buffered(tmp_path: Path) -> None:
    blobs = LocalDirectory(tmp_path, direct_io=False)
    data = os.urandom(direct_io.MIN_BYTES * 2)
    blobs.put("cd/cde.png", data, "image/png")
    assert (tmp_path / "cd" / "cde.png").read_bytes() == data


def test_the_setting_turns_it_off(tmp_path: Path) -> None:
    from imagegate.config import Settings
    from imagegate.storage.blobs import open_backend

    assert open_backend(Settings(data_dir=tmp_path)).direct_io  # type: ignore[attr-defined]
    off = open_backend(Settings(data_dir=tmp_path, blob_direct_io=False))
    assert not off.direct_io  # type: ignore[attr-defined]
