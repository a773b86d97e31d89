"""The chain that signs manifests: the operator's own, or one made here on first start.

C2PA readers (c2pa-rs, which c2pa-python binds) refuse a signing certificate that lacks the
SubjectKeyIdentifier and AuthorityKeyIdentifier extensions or an emailProtection/documentSigning
extended key usage, and a chain whose end is its own issuer. So the default is two certificates:
an operator CA (self-signed, 10 years, kept to issue the next signer) and an ES256 (P-256) signer
it issued (2 years). Readers who trust imagegate's images are given `ca.pem` as a trust anchor.

Several processes starting at once (`serve --workers N`) agree on one chain: it is written into a
new directory that is renamed into place, which only the first of them manages; the others read it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
SIGNER_DAYS = 730


@dataclass(frozen=True)
class Credentials:
    chain_pem: bytes  # the signer's certificate, then its issuers
    key_pem: bytes  # the signer's private key (PKCS#8)
    ca_pem: bytes | None  # the trust anchor to hand readers, when known
    ca_path: Path | None  # where it is on disk


def load_credentials(data_dir: Path, cert: Path | None = None, key: Path | None = None) -> Credentials:
    """The operator's chain when both paths are given, else <data_dir>/provenance/ (made if new)."""
    if (cert is None) != (key is None):
        raise ValueError("provenance_cert and provenance_key go together: give both or neither")
    if cert is not None and key is not None:
        chain = cert.read_bytes()
        certificates = x509.load_pem_x509_certificates(chain)
        last = certificates[-1]
        anchor = last.public_bytes(serialization.Encoding.PEM) if last.issuer == last.subject else None
        return Credentials(chain, key.read_bytes(), anchor, cert if anchor else None)
    folder = data_dir / "provenance"
    if not (folder / "signer.pem").exists():
        _create(folder)
    return Credentials(
        (folder / "signer.pem").read_bytes(),
        (folder / "signer-key.pem").read_bytes(),
        (folder / "ca.pem").read_bytes(),
        folder / "ca.pem",
    )


def _create(folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".provenance-"))  # mode 0700
    try:
        ca_key, ca, signer_key, signer = make_chain()
        pem = serialization.Encoding.PEM
        (staging / "ca.pem").write_bytes(ca.public_bytes(pem))
        (staging / "signer.pem").write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
        for name, private in (("ca-key.pem", ca_key), ("signer-key.pem", signer_key)):
            path = staging / name
            path.write_bytes(_private_pem(private))
            path.chmod(0o600)
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(staging, folder)  # fails when another process made it first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (folder / "signer.pem").exists():
        raise RuntimeError(f"could not create the provenance signing chain in {folder}")


def make_chain(
    organization: str = "imagegate",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """(CA key, CA certificate, signer key, signer certificate), as C2PA readers require them."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organization} provenance CA", organization)
    ca = (
        _base(ca_name, ca_name, ca_key.public_key(), now, datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        _base(
            _name(f"{organization} image signer", organization),
            ca_name,
            key.public_key(),
            now,
            datetime.timedelta(days=SIGNER_DAYS),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca, key, signer


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _base(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    valid_for: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
    )


def _usage(**granted: bool) -> x509.KeyUsage:
    names = (
        "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
        "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
    )  # fmt: skip
    return x509.KeyUsage(**{name: granted.get(name, False) for name in names})


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
