"""Stage: encode a finished image and keep it in the content-addressed store.

Contract: `encode(image, job)` renders pixels to the job's output format (worker thread);
`sealed_one(final, job, seal)` embeds a streamed image's signed provenance manifest (worker
thread); `store(final, job, blobs)` returns the encoded bytes and the StoredImage row, so the
response can carry both b64_json and a signed URL. `write(final, job, blobs, seal)` is `store`
without the row, sealing first, synchronous: the one call that keeps a non-streamed image before
the unit of work (flow/ports.py RequestEnd) indexes it in the transaction that settles it. Seal
and blob write are one worker-thread hop under load and none at all for a lone request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import anyio.to_thread
from PIL import Image

from imagegate.domain import EngineEvent, FinalImage, ImageJob, PartialImage
from imagegate.errors import EngineFailed, GatewayError
from imagegate.flow.ports import Blobs
from imagegate.flow.route import RouteReport
from imagegate.images.encode import MEDIA_TYPES, encode_image
from imagegate.storage.blobs import StoredImage


def _encode(image: Image.Image, job: ImageJob) -> bytes:
    return encode_image(
        image,
        job.output_format,
        compression=job.output_compression,
        transparent=job.background == "transparent",
    )


async def encode(image: Image.Image, job: ImageJob) -> bytes:
    return await anyio.to_thread.run_sync(_encode, image, job)


def _bytes(final: FinalImage, job: ImageJob) -> bytes:
    if final.encoded is not None:
        return final.encoded
    if final.image is not None:
        return _encode(final.image, job)
    raise EngineFailed("The engine returned an empty image.")


async def partial_bytes(partial: PartialImage, job: ImageJob) -> bytes:
    """A partial image in the job's format (a local engine's pixels encoded on a worker thread)."""
    if partial.encoded is not None:
        return partial.encoded
    assert partial.image is not None
    return await encode(partial.image, job)


async def encoded(event: EngineEvent, job: ImageJob) -> EngineEvent:
    """A final image whose pixels are encoded (worker thread); anything else unchanged."""
    if isinstance(event, FinalImage) and event.encoded is None and event.image is not None:
        return replace(event, image=None, encoded=await encode(event.image, job))
    return event


Seal = Callable[[bytes, str], bytes]  # (image bytes, format) -> the bytes with their manifest


def _sealed(final: FinalImage, job: ImageJob, seal: Seal) -> FinalImage:
    data = seal(_bytes(final, job), job.output_format)
    return replace(final, image=None, encoded=data, b64=None)  # b64: of the unsealed bytes


async def sealed_one(final: FinalImage, job: ImageJob, seal: Seal | None) -> FinalImage:
    """A streamed image with its provenance manifest embedded (provenance/sign.py), signed on a
    worker thread (c2pa releases the GIL); unchanged when signing is off."""
    if seal is None:
        return final
    return await anyio.to_thread.run_sync(_sealed, final, job, seal)


async def store(final: FinalImage, job: ImageJob, blobs: Blobs) -> tuple[bytes, StoredImage]:
    """Encode (pixels, on a worker thread) and keep a streamed image, indexed at once."""
    data = final.encoded if final.encoded is not None else await anyio.to_thread.run_sync(_bytes, final, job)
    return data, await blobs.put(data, job.output_format, MEDIA_TYPES[job.output_format])


def write(final: FinalImage, job: ImageJob, blobs: Blobs, seal: Seal | None) -> tuple[bytes, StoredImage]:
    """Encode (pixels), seal (unless `seal` is None) and write the blob file, without its row (the
    request's unit of work indexes it). The bytes returned are the blob's: a response carries their
    base64, not the engine's (`FinalImage.b64` is of the unsealed bytes)."""
    data = _bytes(final, job) if seal is None else _sealed(final, job, seal).encoded
    assert data is not None
    return data, blobs.write(data, job.output_format, MEDIA_TYPES[job.output_format])


async def engine_events(
    events: AsyncIterator[EngineEvent], job: ImageJob, report: RouteReport
) -> AsyncIterator[EngineEvent]:
    """The router's events, a local engine's final pixels encoded as they come (so that n pictures'
    pixels are never all held), an engine's bug turned into EngineFailed (no traceback reaches the
    client), and the input images' pixels dropped as soon as the engine is done with them."""
    try:
        async for event in events:
            yield await encoded(event, job) if not job.stream else event
    except GatewayError:
        raise
    except Exception as exc:
        name = report.route.engine.name if report.route else "unknown"
        raise EngineFailed(f"The '{name}' engine failed while generating the image.") from exc
    finally:
        for image in (*job.images, *([job.mask] if job.mask else [])):
            image.release()
