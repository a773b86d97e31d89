"""A PNG sealed without a Python stream (provenance/embed.py): c2pa-rs signs a manifest chunk for
a hash computed in Python, spliced in before IEND. Each manifest is read back by c2pa as any reader
would; `Builder.sign` (the stream path) is watched, so a test of the embedded path fails if it was
taken instead; and a failing embed falls back to it."""

from __future__ import annotations

import hashlib
import io
import logging
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import c2pa
import pytest
from PIL import Image

from imagegate.provenance import Credentials, Origin, Sealer, embed, inspect, load_credentials
from imagegate.provenance.embed import PNG_SIGNATURE, png_manifest_offset
from tests.fakes.upstream import photo_png
from tests.imaging import encode, mask_png, noise, pixels, png

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@pytest.fixture
def credentials(tmp_path: Path) -> Credentials:
    return load_credentials(tmp_path)


@pytest.fixture
def stream_signs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The media type of each image `Builder.sign` sealed (the stream path), in order."""
    signed: list[str] = []
    real = c2pa.Builder.sign

    def sign(self: c2pa.Builder, signer: Any, media_type: str, *args: Any) -> bytes:
        signed.append(media_type)
        return real(self, signer, media_type, *args)

    monkeypatch.setattr(c2pa.Builder, "sign", sign)
    yield signed


def chunks(data: bytes) -> list[bytes]:
    """The chunk types of a well-formed PNG: every length and CRC right, nothing after IEND."""
    assert data.startswith(PNG_SIGNATURE)
    at, kinds = len(PNG_SIGNATURE), []
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert data[at + 8 + length : at + 12 + length] == zlib.crc32(kind + body).to_bytes(4, "big")
        kinds.append(kind)
        at += 12 + length
    assert at == len(data) and kinds[-1] == b"IEND"
    return kinds


def test_a_png_sealed_without_a_stream_reads_back_trusted(
    credentials: Credentials, stream_signs: list[str]
) -> None:
    data = photo_png(320, 200)
    sealed = Sealer(credentials, "9.9").seal(data, "png", Origin("gpt-image-1", "placeholder"))
    assert stream_signs == []  # c2pa-rs never read the image through Python
    report = inspect(sealed, "image/png", credentials.ca_pem)
    assert report.state == "Trusted" and report.problems == []
    assert report.claim_generator == "imagegate 9.9"
    assert report.actions == [
        {"action": "c2pa.created", "digitalSourceType": TRAINED, "softwareAgent": {"name": "gpt-image-1"}}
    ]
    assert report.generation == {"model": "gpt-image-1", "engine": "placeholder", "kind": "generation"}
    assert report.ingredients == []
    assert inspect(sealed, "image/png").state == "Valid"  # no trust anchor given
    # The manifest is one chunk before IEND; every other byte is the original's, in order.
    kinds = chunks(sealed)
    assert kinds[-2:] == [b"caBX", b"IEND"] and kinds.count(b"caBX") == 1
    at, added = png_manifest_offset(data), len(sealed) - len(data)
    assert at == len(data) - 12 and sealed[:at] + sealed[at + added :] == data
    assert 0 < added < 6_000  # no thumbnail
    assert pixels(sealed) == pixels(data)
    Image.open(io.BytesIO(sealed)).verify()


@pytest.mark.parametrize("extra", ["none", "text after the image data", "big"])
def test_the_hash_that_comes_with_a_sealed_png_is_its_sha256(
    credentials: Credentials, stream_signs: list[str], extra: str
) -> None:
    """The blob name that sealing hands on (one SHA-256 pass shared with the data hash) is the
    SHA-256 of the bytes it returns, whatever chunks sit between the image data and IEND."""
    data = photo_png(1024, 768) if extra == "big" else png(64, 64, 3)
    if extra == "text after the image data":
        text = b"tEXtComment\x00after IDAT"
        chunk = (len(text) - 4).to_bytes(4, "big") + text + zlib.crc32(text).to_bytes(4, "big")
        data = data[:-12] + chunk + data[-12:]
    sealed, digest = Sealer(credentials, "1").seal_hashed(data, "png", Origin("m", "e"))
    assert stream_signs == []
    assert digest == hashlib.sha256(sealed).hexdigest()
    assert chunks(sealed)[-2:] == [b"caBX", b"IEND"]
    assert inspect(sealed, "image/png", credentials.ca_pem).state == "Trusted"
    # The stream path hashes nothing on the way: the blob store hashes the bytes itself.
    jpeg = encode(noise(16, 16), "JPEG")
    assert Sealer(credentials, "1").seal_hashed(jpeg, "jpeg", Origin("m", "e"))[1] is None


def test_an_edits_inputs_are_its_ingredients_on_the_embedded_path(
    credentials: Credentials, stream_signs: list[str]
) -> None:
    inputs = [
        ("image/png", png(64, 64, 1)),
        ("image/jpeg", encode(noise(48, 32), "JPEG")),
        ("image/png", mask_png(64, 64, (8, 8, 32, 32))),
    ]
    origin = Origin(
        "gpt-image-1",
        "placeholder",
        kind="edit",
        inputs=[(media_type, lambda b=body: io.BytesIO(b)) for media_type, body in inputs],
    )
    sealed = Sealer(credentials, "1").seal(png(64, 64), "png", origin)
    assert stream_signs == []
    report = inspect(sealed, "image/png", credentials.ca_pem)
    assert report.state == "Trusted" and report.generation["kind"] == "edit"
    assert [a["action"] for a in report.actions] == ["c2pa.created"]
    assert [(i["title"], i["relationship"], i["format"]) for i in report.ingredients] == [
        ("input-0", "inputTo", "image/png"),
        ("input-1", "inputTo", "image/jpeg"),
        ("input-2", "inputTo", "image/png"),
    ]


@pytest.mark.parametrize("where", ["image data", "before the manifest"])
def test_a_changed_byte_invalidates_an_embedded_manifest(credentials: Credentials, where: str) -> None:
    sealed = bytearray(Sealer(credentials, "1").seal(png(64, 48), "png", Origin("m", "e")))
    if where == "image data":
        sealed[50] ^= 0x01  # inside IDAT, which starts at byte 33 (and the manifest is at the end)
    else:
        sealed[29] ^= 0x01  # IHDR's CRC: outside the exclusion, not a pixel
    report = inspect(bytes(sealed), "image/png", credentials.ca_pem)
    assert report.found and report.state == "Invalid" and not report.valid
    assert any("dataHash.mismatch" in p for p in report.problems)


def test_eight_threads_seal_at_once(credentials: Credentials, stream_signs: list[str]) -> None:
    sealer = Sealer(credentials, "1")
    images = [png(96, 64, seed) for seed in range(32)]
    with ThreadPoolExecutor(8) as pool:
        sealed = list(pool.map(lambda d: sealer.seal(d, "png", Origin("m", "e")), images))
    assert stream_signs == []
    for data, out in zip(images, sealed, strict=True):
        assert inspect(out, "image/png", credentials.ca_pem).state == "Trusted"
        assert pixels(out) == pixels(data)


def test_a_png_that_carries_a_manifest_keeps_the_stream_path(
    credentials: Credentials, stream_signs: list[str]
) -> None:
    """A relayed PNG signed by its provider: c2pa replaces its caBX chunk and keeps the original
    as the parent ingredient, which a spliced chunk would not do."""
    signed = Sealer(credentials, "provider").seal(png(64, 64), "png", Origin("p", "provider"))
    assert stream_signs == []
    assert png_manifest_offset(signed) is None  # its caBX chunk found on the same walk
    sealed = Sealer(credentials, "1").seal(signed, "png", Origin("m", "upstream:x"))
    assert stream_signs == ["image/png"]
    report = inspect(sealed, "image/png", credentials.ca_pem)
    assert report.state == "Trusted" and [a["action"] for a in report.actions] == ["c2pa.opened"]
    assert [(i["relationship"], i["signed"]) for i in report.ingredients] == [("parentOf", True)]
    assert chunks(sealed).count(b"caBX") == 1


def test_what_is_not_an_ihdr_first_iend_last_png_is_left_to_the_stream_path(
    credentials: Credentials, stream_signs: list[str]
) -> None:
    data = png(32, 32)
    assert png_manifest_offset(data) == len(data) - 12
    assert png_manifest_offset(encode(noise(8, 8), "JPEG")) is None
    assert png_manifest_offset(data[:40]) is None  # cut short: no IEND
    assert png_manifest_offset(data[:12] + b"tEXt" + data[16:]) is None
    trailing = data + b"bytes after IEND"
    assert png_manifest_offset(trailing) is None
    # Readers stop at the first IEND: a chunk after it would not be found.
    assert png_manifest_offset(data + data[-12:]) is None
    assert png_manifest_offset(data[:-12] + data[-12:] + data[37:49] + data[-12:]) is None
    Sealer(credentials, "1").seal(encode(noise(32, 32), "JPEG"), "jpeg", Origin("m", "e"))
    Sealer(credentials, "1", embed_png=False).seal(data, "png", Origin("m", "e"))
    sealed = Sealer(credentials, "1").seal(trailing, "png", Origin("m", "e"))
    twice = Sealer(credentials, "1").seal(data + data[-12:], "png", Origin("m", "e"))
    assert stream_signs == ["image/jpeg", "image/png", "image/png", "image/png"]
    assert inspect(sealed, "image/png", credentials.ca_pem).state == "Trusted"
    assert inspect(twice, "image/png", credentials.ca_pem).state == "Trusted"


def test_a_failing_embed_falls_back_to_the_stream_path_and_says_so_once(
    credentials: Credentials,
    stream_signs: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """c2pa-rs refusing the DataHash (here: JSON it cannot parse, as a changed format would be):
    the image is sealed the old way, the warning is logged once, and later PNGs go straight to
    the stream path."""
    hashed: list[int] = []

    def refused(digest: bytes, at: int, length: int) -> str:
        hashed.append(at)
        return '{"hash": "not a DataHash"'

    monkeypatch.setattr(embed, "data_hash", refused)
    sealer = Sealer(credentials, "1")
    with caplog.at_level(logging.WARNING, logger="imagegate.provenance"):
        sealed = [sealer.seal(png(48, 48, seed), "png", Origin("m", "e")) for seed in range(3)]
    assert hashed == [png_manifest_offset(png(48, 48, 0))] and stream_signs == ["image/png"] * 3
    [warning] = caplog.records
    assert "stream signing" in warning.getMessage() and warning.exc_info is not None
    assert isinstance(warning.exc_info[1], c2pa.C2paError)
    for out in sealed:
        assert inspect(out, "image/png", credentials.ca_pem).state == "Trusted"


def test_a_c2pa_without_the_natives_seals_through_streams(
    credentials: Credentials,
    stream_signs: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def missing(self: embed.PngEmbedder) -> None:
        raise AttributeError("c2pa_builder_sign_data_hashed_embeddable")

    monkeypatch.setattr(embed.PngEmbedder, "__init__", missing)
    with caplog.at_level(logging.WARNING, logger="imagegate.provenance"):
        sealer = Sealer(credentials, "1")
    assert len(caplog.records) == 1
    sealed = sealer.seal(png(32, 32), "png", Origin("m", "e"))
    assert stream_signs == ["image/png"]
    assert inspect(sealed, "image/png", credentials.ca_pem).state == "Trusted"
