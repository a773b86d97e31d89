"""The provenance package on its own: the signing chain made once and shared, an operator's own
chain, a manifest in each format read back and a tampered file refused."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from PIL import Image

from imagegate.provenance import Origin, Sealer, inspect, load_credentials
from imagegate.provenance.credentials import make_chain
from imagegate.provenance.sign import may_carry_manifest
from tests.imaging import noise

FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    noise(64, 48).save(out, FORMATS[fmt][0])
    return out.getvalue()


def test_the_chain_is_made_once_and_every_process_agrees_on_it(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:  # as workers starting at once would
        made = list(pool.map(lambda _: load_credentials(tmp_path), range(8)))
    assert len({c.chain_pem for c in made}) == 1 and len({c.key_pem for c in made}) == 1
    assert load_credentials(tmp_path).chain_pem == made[0].chain_pem  # and kept
    assert made[0].ca_path == tmp_path / "provenance" / "ca.pem"
    assert (tmp_path / "provenance" / "signer-key.pem").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["provenance"]  # no staging folder left behind


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_a_sealed_image_reads_back_trusted_and_keeps_its_pixels(tmp_path: Path, fmt: str) -> None:
    credentials = load_credentials(tmp_path)
    data = image(fmt)
    sealed = Sealer(credentials, "9.9").seal(data, fmt, Origin("gpt-image-1", "placeholder"))
    report = inspect(sealed, FORMATS[fmt][1], credentials.ca_pem)
    assert report.state == "Trusted" and report.claim_generator == "imagegate 9.9"
    assert report.generation == {"model": "gpt-image-1", "engine": "placeholder", "kind": "generation"}
    assert inspect(sealed, FORMATS[fmt][1]).state == "Valid"  # no trust anchor given
    assert Image.open(io.BytesIO(sealed)).tobytes() == Image.open(io.BytesIO(data)).tobytes()
    assert len(sealed) - len(data) < 6_000  # no thumbnail


def test_a_changed_byte_invalidates_the_manifest(tmp_path: Path) -> None:
    credentials = load_credentials(tmp_path)
    sealed = bytearray(Sealer(credentials, "1").seal(image("png"), "png", Origin("m", "e")))
    sealed[-40] ^= 0x01  # in the image data, after the manifest
    report = inspect(bytes(sealed), "image/png", credentials.ca_pem)
    assert report.found and report.state == "Invalid" and not report.valid and report.problems


def test_another_ca_is_not_trusted(tmp_path: Path) -> None:
    sealed = Sealer(load_credentials(tmp_path / "a"), "1").seal(image("png"), "png", Origin("m", "e"))
    other = load_credentials(tmp_path / "b").ca_pem
    report = inspect(sealed, "image/png", other)
    assert report.state == "Valid" and any("untrusted" in p for p in report.problems)


def test_an_operators_own_chain_signs(tmp_path: Path) -> None:
    ca_key, ca, key, signer = make_chain("Example Relay Ltd")
    pem = serialization.Encoding.PEM
    (tmp_path / "chain.pem").write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    credentials = load_credentials(tmp_path / "data", tmp_path / "chain.pem", tmp_path / "key.pem")
    assert not (tmp_path / "data").exists()  # nothing made
    sealed = Sealer(credentials, "1").seal(image("jpeg"), "jpeg", Origin("m", "e"))
    report = inspect(sealed, "image/jpeg", ca.public_bytes(pem))
    assert (
        report.state == "Trusted"
        and report.signer == "Example Relay Ltd image signer (issuer Example Relay Ltd)"
    )
    with pytest.raises(ValueError, match="together"):
        load_credentials(tmp_path, tmp_path / "chain.pem", None)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_only_an_image_with_a_manifest_store_becomes_the_parent(tmp_path: Path, fmt: str) -> None:
    """The walk over chunks or segments that spares c2pa's parse: a relayed image without a
    manifest is created; a signed one is kept as the parent; a file the walk cannot follow (cut
    short) is left to c2pa."""
    credentials = load_credentials(tmp_path)
    sealer = Sealer(credentials, "1")
    media_type = FORMATS[fmt][1]
    plain = image(fmt)
    signed = sealer.seal(plain, fmt, Origin("provider-model", "provider"))
    assert not may_carry_manifest(plain) and may_carry_manifest(signed)
    assert may_carry_manifest(plain[: len(plain) // 3] if fmt != "jpeg" else plain[:20])
    for data, action in ((plain, "c2pa.created"), (signed, "c2pa.opened")):
        report = inspect(sealer.seal(data, fmt, Origin("m", "e")), media_type, credentials.ca_pem)
        assert report.state == "Trusted" and [a["action"] for a in report.actions] == [action]
        parents = [i for i in report.ingredients if i["relationship"] == "parentOf"]
        assert len(parents) == (action == "c2pa.opened")


def test_a_key_that_is_not_the_signers_is_refused_at_start(tmp_path: Path) -> None:
    """c2pa does not re-check each manifest after signing it: a mismatched key would make every
    manifest invalid, so the Sealer refuses it before the first image."""
    _, ca, _, signer = make_chain("Example Relay Ltd")
    other_key = make_chain("Someone Else")[2]
    pem = serialization.Encoding.PEM
    (tmp_path / "chain.pem").write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(
        other_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    credentials = load_credentials(tmp_path / "data", tmp_path / "chain.pem", tmp_path / "key.pem")
    with pytest.raises(ValueError, match="does not belong to the first certificate"):
        Sealer(credentials, "1")
