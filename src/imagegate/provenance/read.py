"""What a C2PA reader sees in an image: `imagegate provenance verify FILE [--trust CA.pem]`."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import c2pa

from imagegate.provenance.sign import GENERATION_LABEL


@dataclass(frozen=True)
class Report:
    found: bool  # the file carries a manifest
    state: str | None = None  # Trusted (the signer chains to a trust anchor), Valid, or Invalid
    claim_generator: str | None = None
    signer: str | None = None  # the certificate's common name and issuer
    signed_at: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    generation: dict[str, Any] = field(default_factory=dict)  # model, engine, kind
    ingredients: list[dict[str, Any]] = field(default_factory=list)  # title, relationship, format, signed
    problems: list[str] = field(default_factory=list)  # the validation failures, explained

    @property
    def valid(self) -> bool:
        return self.found and self.state in ("Trusted", "Valid")


def inspect(data: bytes, media_type: str, trust_pem: bytes | None = None) -> Report:
    """Read and validate the manifest of `data`; with `trust_pem`, check its signer against it."""
    settings: dict[str, Any] = {"verify": {"verify_trust": trust_pem is not None}}
    if trust_pem is not None:
        settings["trust"] = {"trust_anchors": trust_pem.decode()}
    context = c2pa.Context(c2pa.Settings.from_dict(settings))
    reader = c2pa.Reader.try_create(media_type, io.BytesIO(data), context=context)
    if reader is None:
        return Report(found=False)
    with reader:
        store = json.loads(reader.json())
        state = reader.get_validation_state()
    active = store["manifests"][store["active_manifest"]]
    generator = (active.get("claim_generator_info") or [{}])[0]
    signature = active.get("signature_info") or {}
    assertions = {a["label"]: a.get("data", {}) for a in active.get("assertions", [])}
    actions = assertions.get("c2pa.actions.v2", assertions.get("c2pa.actions", {})).get("actions", [])
    failures = (store.get("validation_results") or {}).get("activeManifest", {}).get("failure", [])
    return Report(
        found=True,
        state=state,
        claim_generator=f"{generator.get('name', '?')} {generator.get('version', '')}".strip(),
        signer=f"{signature.get('common_name', '?')} (issuer {signature.get('issuer', '?')})",
        signed_at=signature.get("time"),
        actions=[
            {k: v for k, v in a.items() if k in ("action", "digitalSourceType", "softwareAgent")}
            for a in actions
        ],
        generation=assertions.get(GENERATION_LABEL, {}),
        ingredients=[
            {
                "title": i.get("title"),
                "relationship": i.get("relationship"),
                "format": i.get("format"),
                "signed": i.get("active_manifest") is not None,
            }
            for i in active.get("ingredients", [])
        ],
        problems=[f"{f.get('code')}: {f.get('explanation')}" for f in failures],
    )
