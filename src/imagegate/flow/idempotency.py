"""Stage: Idempotency-Key handling (non-streaming requests).

Contract: `body_hash(request)` fingerprints what the client sent (parameters and upload
bytes, not the multipart boundary, which changes between retries); `claim(...)` returns the
stored response for a replay, raises Conflict (409) for a reused key with another body or a
request still running (the SDKs retry 409), or returns None for a new request. Stored
responses reference image blobs by name instead of carrying megabytes of base64.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import anyio.to_thread

from imagegate.errors import Conflict, InvalidValue
from imagegate.flow.ports import Blobs, Claims
from imagegate.flow.request import ImageRequest
from imagegate.storage import bounds
from imagegate.storage.signing import UrlSigner


def check_key(value: str | None) -> str | None:
    """The Idempotency-Key header as a claim may hold it: 1 to 255 visible ASCII characters (a
    header's other bytes arrive as latin-1, so one 'é' is two characters), else 400."""
    if value is None or value == "":
        return None
    if len(value) > bounds.IDEMPOTENCY_KEY or not (value.isascii() and value.isprintable()):
        raise InvalidValue(
            f"Invalid 'Idempotency-Key' header: expected at most {bounds.IDEMPOTENCY_KEY} visible ASCII "
            "characters (a UUID is a good key).",
            param=None,
        )
    return value


def body_hash(request: ImageRequest) -> str:
    h = hashlib.sha256()
    h.update(request.kind.encode())
    h.update(json.dumps(request.params, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))
    for upload in request.uploads:
        h.update(upload.field.encode("utf-8", "surrogatepass"))
        h.update(upload.payload.sha256())  # read in chunks from the upload's temporary file
    return h.hexdigest()


async def claim_for(
    request: ImageRequest, claims: Claims, key_id: int, idem_key: str, pending_s: float
) -> dict[str, Any] | None:
    """`claim` with the request's fingerprint; uploads are hashed from their temporary files
    (20 MB: about 40 ms), so off the event loop."""
    digest = await anyio.to_thread.run_sync(body_hash, request) if request.uploads else body_hash(request)
    return await claim(claims, key_id, idem_key, digest, pending_s)


async def claim(
    claims: Claims, key_id: int, idem_key: str, digest: str, pending_s: float
) -> dict[str, Any] | None:
    result = await claims.begin(key_id, idem_key, digest, pending_s)
    if result.outcome == "new":
        return None
    if result.outcome == "replay":
        assert result.response is not None
        return result.response
    if result.outcome == "conflict":
        raise Conflict(
            "This Idempotency-Key was already used with a different request body. Use a new key "
            "for a new request.",
            code="idempotency_key_reused",
        )
    raise Conflict(
        "A request with this Idempotency-Key is still being processed. Retry shortly to get its result.",
        code="idempotency_key_in_progress",
    )


def stored_form(body: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The response as kept for replays: image payloads replaced by blob names."""
    data = [{k: v for k, v in item.items() if k not in ("b64_json", "url")} for item in body["data"]]
    flags = {"b64": any("b64_json" in i for i in body["data"]), "url": any("url" in i for i in body["data"])}
    return {"body": {**body, "data": data}, "blobs": names, **flags}


async def replay(stored: dict[str, Any], blobs: Blobs, signer: UrlSigner, base_url: str) -> dict[str, Any]:
    body = dict(stored["body"])
    items = []
    for item, name in zip(body["data"], stored["blobs"], strict=True):
        out = dict(item)
        if stored["b64"]:
            data = await blobs.read(name)
            if data is None:
                raise Conflict(
                    "The original result of this Idempotency-Key is no longer stored; use a new key.",
                    code="idempotency_result_expired",
                )
            out["b64_json"] = base64.b64encode(data).decode("ascii")
        if stored["url"]:
            out["url"] = signer.url(base_url, name)
        items.append(out)
    body["data"] = items
    return body
