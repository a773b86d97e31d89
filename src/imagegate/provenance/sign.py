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
it on a worker thread (flow/store_image.py `sealed`).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import c2pa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imagegate.provenance.credentials import Credentials

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.imagegate.generation"


@dataclass(frozen=True)
class Origin:
    """What the manifest says of an image."""

    model: str
    engine: str
    kind: str = "generation"  # or "edit"
    # Each input image (then the mask): its media type and a way to read its bytes.
    inputs: Sequence[tuple[str, Callable[[], IO[bytes]]]] = field(default_factory=tuple)
    relayed: bool = True  # from a provider, whose own manifest it may carry (else: not looked for)


class Sealer:
    """Signs manifests with one chain; safe to call from several threads (one c2pa signer each)."""

    def __init__(self, credentials: Credentials, version: str) -> None:
        self.credentials = credentials
        self.version = version
        self._local = threading.local()
        # Refused at start-up, not at the first image. c2pa-rs signs with it (C2paSignerInfo): its
        # callback signer (OpenSSL through Python) was slower here and reserves 9.4 KB more per image.
        key = serialization.load_pem_private_key(credentials.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the provenance signing key must be an ES256 (P-256) key")

    def seal(self, data: bytes, fmt: str, origin: Origin) -> bytes:
        """`data` (an image in `fmt`: png, jpeg or webp) with its manifest embedded."""
        media_type = MEDIA_TYPES[fmt]
        signer, context = self._tools()
        parent = origin.relayed and c2pa.Reader.try_create(media_type, io.BytesIO(data)) is not None
        inputs = [f"input-{i}" for i in range(len(origin.inputs))]
        action: dict[str, Any] = (
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["provider", *inputs]}}
            if parent
            else {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": origin.model},
                **({"parameters": {"ingredientIds": inputs}} if inputs else {}),
            }
        )
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
        if parent:
            provider = {"title": f"provider.{fmt}", "relationship": "parentOf", "label": "provider"}
            builder.add_ingredient(json.dumps(provider), media_type, io.BytesIO(data))
        for label, (input_type, open_input) in zip(inputs, origin.inputs, strict=True):
            ingredient = {"title": label, "relationship": "inputTo", "label": label}
            builder.add_ingredient(json.dumps(ingredient), input_type, open_input())
        out = io.BytesIO()
        builder.sign(signer, media_type, io.BytesIO(data), out)
        return out.getvalue()

    def _tools(self) -> tuple[c2pa.Signer, c2pa.Context]:
        local = self._local
        if getattr(local, "signer", None) is None:
            info = c2pa.C2paSignerInfo(b"es256", self.credentials.chain_pem, self.credentials.key_pem, None)
            local.signer = c2pa.Signer.from_info(info)
            local.context = c2pa.Context(
                c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
            )
        return local.signer, local.context
