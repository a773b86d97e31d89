"""The blob store's contract, over both backends (a local directory, an S3 bucket on moto's server
on loopback), each on SQLite and on PostgreSQL: the rows are the truth, the bytes follow them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from imagegate.clock import ManualClock
from imagegate.config import Settings
from imagegate.http.serve import free_port
from imagegate.storage.blobs import BlobBackend, ImageStore, LocalDirectory, open_backend
from imagegate.storage.s3 import S3Bucket
from imagegate.storage.tables import images
from tests.services import s3_client

RETENTION_S = 100


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The configuration of each backend, as an operator writes it."""
    if request.param == "local":
        return Settings(data_dir=tmp_path)
    bucket = request.getfixturevalue("bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    return Settings(
        data_dir=tmp_path,
        blob_store=f"s3://{bucket}/images/",
        s3_endpoint_url=endpoint,
        s3_presigned_urls=True,
    )


@pytest.fixture
def backend(settings: Settings) -> BlobBackend:
    return open_backend(settings)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(backend: BlobBackend, engine: Engine, clock: ManualClock) -> ImageStore:
    return ImageStore(backend, engine, clock, retention_s=RETENTION_S)


def blobs_kept(backend: BlobBackend) -> list[str]:
    """Every key the backend holds, looked at from outside the store."""
    if isinstance(backend, LocalDirectory):
        return sorted(str(p.relative_to(backend.root)) for p in backend.root.rglob("*") if p.is_file())
    assert isinstance(backend, S3Bucket)
    listed = s3_client(backend.client.meta.endpoint_url).list_objects_v2(Bucket=backend.bucket)
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert all(k.startswith(backend.prefix) for k in keys)
    return sorted(k.removeprefix(backend.prefix) for k in keys)


def read_all(store: ImageStore, sha: str, ext: str, chunk: int = 64 * 1024) -> bytes | None:
    found = store.find(sha, ext)
    body = store.open(found) if found is not None else None
    if body is None:
        return None
    try:
        return b"".join(iter(lambda: body.read(chunk), b""))
    finally:
        body.close()


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(images)).scalar_one())


def test_the_configuration_picks_the_backend(settings: Settings, backend: BlobBackend) -> None:
    if settings.blob_store is None:
        assert isinstance(backend, LocalDirectory) and backend.root == settings.data_dir / "blobs"
        assert not backend.remote
    else:
        assert isinstance(backend, S3Bucket) and backend.prefix == "images/" and backend.remote


def test_put_then_find_open_and_read(store: ImageStore) -> None:
    stored = store.put(b"png-bytes", "png", "image/png")
    assert stored.name == f"{stored.sha256}.png" and stored.size_bytes == 9
    assert store.find(stored.sha256, "png") == stored
    assert read_all(store, stored.sha256, "png", chunk=4) == b"png-bytes"
    assert store.read(stored.sha256, "png") == b"png-bytes"
    assert blobs_kept(store.blobs) == [stored.key] == [f"{stored.sha256[:2]}/{stored.name}"]


def test_a_written_blob_is_found_once_indexed_in_the_callers_transaction(
    store: ImageStore, engine: Engine
) -> None:
    stored = store.write(b"jpeg-bytes", "jpeg", "image/jpeg")
    assert store.find(stored.sha256, "jpeg") is None  # bytes, no row: not served
    with pytest.raises(RuntimeError), engine.begin() as conn:
        store.index(conn, stored)
        raise RuntimeError("the request's transaction fails")
    assert store.find(stored.sha256, "jpeg") is None  # its row went with the transaction
    with engine.begin() as conn:
        store.index(conn, stored)
    assert store.find(stored.sha256, "jpeg") == stored
    assert store.read(stored.sha256, "jpeg") == b"jpeg-bytes"


def test_the_same_bytes_stored_twice_are_one_blob_kept_longer(
    store: ImageStore, engine: Engine, clock: ManualClock
) -> None:
    first = store.put(b"same", "png", "image/png")
    clock.advance(60)
    assert store.put(b"same", "png", "image/png") == first
    assert blobs_kept(store.blobs) == [first.key] and row_count(engine) == 1
    clock.advance(60)  # 120 s after the first put, 60 s after the second
    assert store.find(first.sha256, "png") is not None
    assert store.sweep() == 0
    clock.advance(41)
    assert store.find(first.sha256, "png") is None


def test_same_bytes_from_concurrent_writers(store: ImageStore, engine: Engine) -> None:
    with ThreadPoolExecutor(8) as pool:
        stored = set(pool.map(lambda _: store.put(b"racing", "webp", "image/webp"), range(8)))
    assert len(stored) == 1 and row_count(engine) == 1
    assert blobs_kept(store.blobs) == [stored.pop().key]


def test_the_extension_is_part_of_the_name(store: ImageStore) -> None:
    stored = store.put(b"png-bytes", "png", "image/png")
    assert store.find(stored.sha256, "jpeg") is None and store.read(stored.sha256, "jpeg") is None
    assert store.find("0" * 64, "png") is None and store.read("0" * 64, "png") is None


def test_expiry_and_the_sweep(store: ImageStore, engine: Engine, clock: ManualClock) -> None:
    old = store.put(b"old", "png", "image/png")
    clock.advance(50)
    new = store.put(b"new", "png", "image/png")
    clock.advance(RETENTION_S - 50)  # old: exactly its retention; new: half
    assert store.find(old.sha256, "png") is None and store.read(old.sha256, "png") is None
    assert store.find(new.sha256, "png") == new
    assert store.sweep() == 1
    assert blobs_kept(store.blobs) == [new.key] and row_count(engine) == 1
    assert store.blobs.open(old.key) is None
    assert store.sweep() == 0
    clock.advance(50)
    assert store.sweep() == 1
    assert blobs_kept(store.blobs) == [] and row_count(engine) == 0


def test_a_row_whose_blob_is_gone_serves_nothing(store: ImageStore) -> None:
    stored = store.put(b"lost", "png", "image/png")
    store.blobs.delete([stored.key])  # behind the store's back (an operator, a lifecycle rule)
    store.blobs.delete([stored.key, "00/nothing.png"])  # deleting what is not there: no error
    assert store.find(stored.sha256, "png") == stored  # the row is there...
    assert store.open(stored) is None and store.read(stored.sha256, "png") is None  # ...the bytes not
    assert store.sweep() == 0


def test_a_large_blob_is_read_in_chunks(store: ImageStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    stored = store.put(data, "png", "image/png")
    found = store.find(stored.sha256, "png")
    assert found is not None and found.size_bytes == len(data)
    body = store.open(found)
    assert body is not None
    try:
        sizes = list(iter(lambda: len(body.read(256 * 1024)), 0))
    finally:
        body.close()
    assert sum(sizes) == len(data) and max(sizes) <= 256 * 1024 and len(sizes) >= 12
    assert read_all(store, stored.sha256, "png") == data


def test_presigned_urls_fetch_the_bytes_from_the_bucket(store: ImageStore, settings: Settings) -> None:
    stored = store.put(b"\x89PNG presigned", "png", "image/png")
    url = store.presigned_url(stored.name, 60)
    if settings.blob_store is None:
        assert url is None  # a directory has no URLs: imagegate serves it
        return
    assert url is not None and url.startswith(f"{settings.s3_endpoint_url}/")
    assert "X-Amz-Expires=60&" in url  # SigV4, for the lifetime asked
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG presigned"
    assert fetched.headers["content-type"] == "image/png"


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    yield Settings(
        data_dir=tmp_path, blob_store="s3://nobody-listens", s3_endpoint_url=f"http://127.0.0.1:{free_port()}"
    )


def test_opening_a_bucket_makes_no_request(unreachable: Settings) -> None:
    """The CLI opens the stores for every command: a client is made, nothing is sent."""
    backend = open_backend(unreachable)
    assert isinstance(backend, S3Bucket) and backend.bucket == "nobody-listens" and backend.prefix == ""
    assert backend.client.meta.region_name == "eu-west-1"
