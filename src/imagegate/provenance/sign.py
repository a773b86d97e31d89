"""Sealing an image: its bytes with a signed C2PA manifest embedded (PNG, JPEG, WebP).

The manifest of an image imagegate made:
- claim generator `imagegate <version>`;
- `c2pa.actions.v2`: `c2pa.created` with the digital source type `trainedAlgorithmicMedia` and the
  model as software agent; an edit's input images (then its mask) are `inputTo` ingredients;
- `org.imagegate.generation`: model, engine, kind (generation or edit).
An image that arrives with a manifest (OpenAI's gpt-image answers carry one) keeps it: it becomes
the `parentOf` ingredient and the action is `c2pa.opened`.

No thumbnails (c2pa's default adds a JPEG of the image, about 30 KB): the manifest costs about
3 KB. Signing is CPU work in c2pa-rs, called through ctypes, which releases the GIL: callers run
it on a worker thread under load, except for images (and inputs) of 64 KiB or less, whose hop
would cost as much (flow/store_image.py `write_all`, storage/stores.py SqlRequestEnd).

A PNG without a manifest store (every image imagegate makes, most it relays) is sealed by
provenance/embed.py: c2pa-rs signs a manifest chunk for a hash computed here and never calls back
into Python, where `Builder.sign` reads and writes the image through ~666 Python stream callbacks,
each taking the GIL from the event loop. Any other image (JPEG, WebP, a PNG that carries a manifest
and so needs c2pa's replacing or parent handling) goes through `Builder.sign`, as does every image
once the embedded path has failed (logged once).
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imagegate.provenance.credentials import Credentials
from imagegate.provenance.embed import PngEmbedder, png_manifest_offset

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.imagegate.generation"

log = logging.getLogger("imagegate.provenance")


@dataclass(frozen=True)
class Origin:
    """What the manifest says of an image."""

    model: str
    engine: str
    kind: str = "generation"  # or "edit"
    # Each input image (then the mask): its media type and a way to read its bytes.
    inputs: Sequence[tuple[str, Callable[[], IO[bytes]]]] = field(default_factory=tuple)
    relayed: bool = True  # from a provider, whose own manifest it may carry (else: not looked for)


def may_carry_manifest(data: bytes) -> bool:
    """False when `data` holds no embedded C2PA manifest store, found by walking the file's
    chunks (PNG's `caBX`, WebP's `C2PA`) or its segments up to the scan (JPEG's APP11, where the
    JUMBF boxes go): a few dozen headers, where c2pa's parse of the whole image took 0.1 ms for a
    tiny PNG and 0.55 ms for a 3 MB one, and a byte search for the `c2pa` label 1.6 ms. Anything
    this does not understand may carry one (c2pa then decides)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _has_chunk(data, 8, b"caBX", big_endian=True)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _has_chunk(data, 12, b"C2PA", big_endian=False)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_has_app11(data)
    except (IndexError, ValueError):
        pass
    return True


def _has_chunk(data: bytes, at: int, wanted: bytes, *, big_endian: bool) -> bool:
    """PNG (length, type, data, CRC) or RIFF (type, length, data, pad to even) chunks."""
    order: Literal["big", "little"] = "big" if big_endian else "little"
    while at + 8 <= len(data):
        if big_endian:
            length, kind, at = int.from_bytes(data[at : at + 4], order), data[at + 4 : at + 8], at + 12
        else:
            kind, length, at = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], order), at + 8
        if kind == wanted:
            return True
        at += length + (length & 1 if not big_endian else 0)
    return at != len(data)  # cut short, or bytes after the end: let c2pa look


def _jpeg_has_app11(data: bytes) -> bool:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return True  # not a marker where one should be
        marker = data[at + 1]
        if marker == 0xEB:  # APP11
            return True
        if marker == 0xDA:  # start of scan: no header segment is left
            return False
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return True


class Sealer:
    """Signs manifests with one chain; safe to call from several threads (one c2pa signer each).

    `embed_png=False` seals every image through `Builder.sign` (the benchmark's comparison)."""

    def __init__(self, credentials: Credentials, version: str, *, embed_png: bool = True) -> None:
        self.credentials = credentials
        self.version = version
        self._local = threading.local()
        self._embedder: PngEmbedder | None = None
        self._embedder_lock = threading.Lock()
        if embed_png:
            try:
                self._embedder = PngEmbedder()
            except Exception:  # a c2pa-python without the natives or helpers it relies on
                log.warning("PNG manifests go through c2pa's stream signing", exc_info=True)
        # Refused at start-up, not at the first image. c2pa-rs signs with it (C2paSignerInfo): a
        # callback signer (OpenSSL through Python) seals a tiny PNG 0.16 ms faster (0.51 against
        # 0.67 ms) but c2pa reserves 11,361 bytes for its signature against 2,011: +9.3 KB per image.
        key = serialization.load_pem_private_key(credentials.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the provenance signing key must be an ES256 (P-256) key")
        # c2pa no longer checks each manifest after signing it (`_tools`): a key that is not the
        # signer certificate's would make every manifest invalid, silently. Refused here instead.
        signer = x509.load_pem_x509_certificates(credentials.chain_pem)[0]
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if signer.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise ValueError(
                "the provenance signing key does not belong to the first certificate of the chain"
            )

    def seal(self, data: bytes, fmt: str, origin: Origin) -> bytes:
        """`data` (an image in `fmt`: png, jpeg or webp) with its manifest embedded."""
        return self.seal_hashed(data, fmt, origin)[0]

    def seal_hashed(self, data: bytes, fmt: str, origin: Origin) -> tuple[bytes, str | None]:
        """`seal`, and the SHA-256 (hex) of the result where sealing computed it on the way (a PNG
        sealed by embed.py, which hashes the bytes once for both); else None."""
        media_type = MEDIA_TYPES[fmt]
        signer, context = self._tools()
        embedder = self._embedder
        # A PNG whose chunks hold no caBX has no parent to keep and no manifest to replace: the
        # manifest chunk spliced in before IEND is all it needs (png_manifest_offset walks its
        # chunks once, for both).
        at = png_manifest_offset(data) if embedder is not None and fmt == "png" else None
        if embedder is not None and at is not None:
            with self._builder(fmt, origin, context, parent=None) as builder:
                try:
                    return embedder.seal(builder, signer, data, at)
                except Exception:  # c2pa-rs or c2pa-python changed under us: the stream path
                    self._stop_embedding()  # still works, with a fresh builder (below)
        parent = (
            origin.relayed
            and may_carry_manifest(data)
            and c2pa.Reader.try_create(media_type, io.BytesIO(data)) is not None
        )
        builder = self._builder(fmt, origin, context, parent=data if parent else None)
        out = io.BytesIO()
        builder.sign(signer, media_type, io.BytesIO(data), out)
        return out.getvalue(), None

    def _builder(
        self, fmt: str, origin: Origin, context: c2pa.Context, *, parent: bytes | None
    ) -> c2pa.Builder:
        """The manifest of `seal`: `parent`, a relayed image's signed original, then the edit's
        inputs as ingredients."""
        inputs = [f"input-{i}" for i in range(len(origin.inputs))]
        action: dict[str, Any] = (
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["provider", *inputs]}}
            if parent is not None
            else {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": origin.model},
                **({"parameters": {"ingredientIds": inputs}} if inputs else {}),
            }
        )
        media_type = MEDIA_TYPES[fmt]
        manifest = {
            "claim_generator_info": [{"name": "imagegate", "version": self.version}],
            "title": f"image.{fmt}",
            "format": media_type,
            "assertions": [
                {"label": "c2pa.actions.v2", "data": {"actions": [action]}},
                {
                    "label": GENERATION_LABEL,
                    "data": {"model": origin.model, "engine": origin.engine, "kind": origin.kind},
                },
            ],
        }
        builder = c2pa.Builder(json.dumps(manifest), context)
        if parent is not None:
            provider = {"title": f"provider.{fmt}", "relationship": "parentOf", "label": "provider"}
            builder.add_ingredient(json.dumps(provider), media_type, io.BytesIO(parent))
        for label, (input_type, open_input) in zip(inputs, origin.inputs, strict=True):
            ingredient = {"title": label, "relationship": "inputTo", "label": label}
            builder.add_ingredient(json.dumps(ingredient), input_type, open_input())
        return builder

    def _stop_embedding(self) -> None:
        """After the first failure, every image takes the stream path: a failure here is a
        c2pa that no longer does what embed.py expects, not one image's fault (the image is
        not read by c2pa on that path)."""
        with self._embedder_lock:
            if self._embedder is None:
                return  # another thread logged it
            self._embedder = None
        log.warning(
            "embedding a signed PNG manifest failed; PNGs now go through c2pa's stream signing", exc_info=True
        )

    def _tools(self) -> tuple[c2pa.Signer, c2pa.Context]:
        local = self._local
        if getattr(local, "signer", None) is None:
            info = c2pa.C2paSignerInfo(b"es256", self.credentials.chain_pem, self.credentials.key_pem, None)
            local.signer = c2pa.Signer.from_info(info)
            # No re-read of every manifest just signed (c2pa's `verify_after_sign`): it checked
            # our own chain on our own output each time, 0.7 ms of a tiny image's 1.2 ms (0.5 ->
            # 5.2 ms for a 3 MB PNG). The tests read every kind of manifest back, trusted.
            settings = {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
            local.context = c2pa.Context(c2pa.Settings.from_dict(settings))
        return local.signer, local.context
