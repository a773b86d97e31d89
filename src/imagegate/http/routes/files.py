"""GET /v1/images/files/{sha256}.{ext}: stored images behind signed, expiring URLs."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from imagegate.errors import NotFound, SignatureInvalid
from imagegate.http.deps import FlowDep

router = APIRouter(tags=["images"])
_NAME = re.compile(r"([0-9a-f]{64})\.(png|jpeg|webp)")
# What UrlSigner writes. Checked first: int() refuses "²" (a digit to str.isdigit) and strings
# of over 4300 digits, and hmac.compare_digest refuses non-ASCII strings.
_EXPIRES = re.compile(r"[0-9]{1,20}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@router.get("/v1/images/files/{name}", response_class=FileResponse)
async def image_file(
    name: str, request: Request, flow: FlowDep, expires: str = "", signature: str = ""
) -> FileResponse:
    match = _NAME.fullmatch(name)
    if match is None:
        raise NotFound(f"No image named '{name}'.", code="image_not_found")
    if (
        not _EXPIRES.fullmatch(expires)
        or not _SIGNATURE.fullmatch(signature)
        or not (flow.signer.check(name, int(expires), signature))
    ):
        raise SignatureInvalid("This image URL's signature is invalid or has expired. Request a new URL.")
    stores = request.app.state.stores
    found = await stores.db.read(stores.images.find, match[1], match[2])
    if found is None:
        raise NotFound("This image is no longer stored (retention passed).", code="image_expired")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"cache-control": "private, max-age=3600"})
