"""Big blobs are written past the page cache (storage/direct_io.py): the same bytes, whatever
their length; small ones, and a file system that refuses O_DIRECT, the usual way."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import pytest

from imagegate.storage import direct_io
from imagegate.storage.blobs import LocalDirectory

pytestmark = pytest.mark.skipif(
    not direct_io.FLAG, reason="O_DIRECT is Linux's: elsewhere every write is buffered"
)


def takes_o_direct(folder: Path) -> bool:
    try:
        os.close(os.open(folder / ".probe", os.O_WRONLY | os.O_CREAT | direct_io.FLAG, 0o600))
    except OSError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / ".probe")
    return True


@pytest.mark.parametrize(
    "size", [direct_io.MIN_BYTES - 1, direct_io.MIN_BYTES, 300_001, 1_134_446, 3 * (1 << 20) + 1]
)
def test_a_blob_reads_back_as_written_whatever_its_length(tmp_path: Path, size: int) -> None:
    if not takes_o_direct(tmp_path):
        pytest.skip("the test directory's file system refuses O_DIRECT")
    blobs = LocalDirectory(tmp_path)
    data = os.urandom(size)
    blobs.put("ab/abc.png", data, "image/png")
    assert (tmp_path / "ab" / "abc.png").read_bytes() == data  # cut back from its padded blocks
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["abc.png"]  # no temporary file left


def test_a_big_blob_is_opened_with_o_direct(tmp_path: Path) -> None:
    if not takes_o_direct(tmp_path):
        pytest.skip("the test directory's file system refuses O_DIRECT")
    flags: list[int] = []

    def opener(path: str, wanted: int) -> int:
        flags.append(wanted)
        return os.open(path, wanted, 0o600)

    data = os.urandom(direct_io.MIN_BYTES + 1)
    assert direct_io.write(str(tmp_path / "x"), data, opener)
    assert flags == [os.O_WRONLY | os.O_CREAT | os.O_EXCL | direct_io.FLAG]
    assert (tmp_path / "x").read_bytes() == data


def test_buffers_are_lent_again_and_never_to_two_writers() -> None:
    buffers = direct_io.AlignedBuffers()
    with buffers.take(5000) as first, buffers.take(3 << 20) as second:
        assert first is not second  # both lent at once
    with buffers.take(4096) as again:
        assert again is first  # the smallest that fits, its pages already touched
    with buffers.take(64 << 20) as huge:
        assert len(huge) >= 64 << 20
    with buffers.take(64 << 20) as other:
        assert other is not huge  # a huge one is not kept for the life of the process


def test_a_file_system_that_refuses_o_direct_gets_buffered_writes(tmp_path: Path) -> None:
    """Linux may create the file before it refuses O_DIRECT: none is left either way."""
    target = tmp_path / "x"

    def refusing(path: str, flags: int) -> int:
        assert flags & direct_io.FLAG
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # created, then refused
        raise OSError(errno.EINVAL, "Invalid argument", path)

    assert not direct_io.write(str(target), b"y" * direct_io.MIN_BYTES, refusing)
    assert not target.exists()
    blobs = LocalDirectory(tmp_path)
    blobs.direct_io = False  # as put() leaves it after such a refusal
    blobs.put("ef/efg.png", b"z" * direct_io.MIN_BYTES, "image/png")
    assert (tmp_path / "ef" / "efg.png").read_bytes() == b"z" * direct_io.MIN_BYTES


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
