"""GET /v1/images/files/{sha256}.{ext}: stored images behind signed, expiring URLs.

Any replica serves any image: the row comes from the shared database, the bytes from the blob
store (a local directory, or a bucket every replica reads), streamed in chunks read on worker
threads, so a large image is never held whole in memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from imagegate.errors import NotFound, SignatureInvalid
from imagegate.http.deps import FlowDep
from imagegate.storage.blobs import ImageStore, Readable, StoredImage

router = APIRouter(tags=["images"])
_NAME = re.compile(r"([0-9a-f]{64})\.(png|jpeg|webp)")
# What UrlSigner writes. Checked first: int() refuses "²" (a digit to str.isdigit) and strings
# of over 4300 digits, and hmac.compare_digest refuses non-ASCII strings.
_EXPIRES = re.compile(r"[0-9]{1,20}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
CHUNK = 256 * 1024


@router.get("/v1/images/files/{name}", response_class=StreamingResponse)
async def image_file(
    name: str, request: Request, flow: FlowDep, expires: str = "", signature: str = ""
) -> StreamingResponse:
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
    body = await _open(stores.images, found) if found is not None else None
    if found is None or body is None:
        raise NotFound("This image is no longer stored (retention passed).", code="image_expired")
    headers = {
        "content-length": str(found.size_bytes),
        "cache-control": "private, max-age=3600",
        "etag": f'"{found.sha256}"',  # content-addressed: the name is the content's hash
    }
    return StreamingResponse(_chunks(body), media_type=found.media_type, headers=headers)


async def _open(images: ImageStore, found: StoredImage) -> Readable | None:
    if not images.remote:
        return images.open(found)  # a local file: one system call, no thread hop
    return await anyio.to_thread.run_sync(images.open, found)


async def _chunks(body: Readable) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(body.read, CHUNK):
            yield chunk
    finally:
        body.close()  # also when the client went away mid-way
