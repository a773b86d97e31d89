"""Stage: encode a finished image and keep it in the content-addressed store.

Contract: `encode(image, job)` renders pixels to the job's output format (worker thread);
`sealed_one(final, job, seal)` embeds a streamed image's signed provenance manifest (worker
thread); `store(final, job, blobs)` returns the encoded bytes and the StoredImage row, so the
response can carry both b64_json and a signed URL. `write_all(finals, job, blobs, seal)` is
`store` for a non-streamed request's images, without the rows, synchronous: it seals them all,
then writes their blobs, before the unit of work (flow/ports.py RequestEnd) indexes them in the
transaction that settles it (storage/stores.py SqlRequestEnd decides where it runs: in place for a
lone request or small images, else one worker-thread hop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
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


# (image bytes, format) -> the bytes with their manifest, and their SHA-256 (hex) where sealing
# computed it anyway (provenance/sign.py `seal_hashed`), else None.
Seal = Callable[[bytes, str], tuple[bytes, str | None]]


def _sealed(final: FinalImage, job: ImageJob, seal: Seal) -> tuple[FinalImage, str | None]:
    data, sha256 = seal(_bytes(final, job), job.output_format)
    return replace(final, image=None, encoded=data, b64=None), sha256  # b64: of the unsealed bytes


async def sealed_one(final: FinalImage, job: ImageJob, seal: Seal | None) -> tuple[FinalImage, str | None]:
    """A streamed image with its provenance manifest embedded (provenance/sign.py), signed on a
    worker thread (c2pa releases the GIL), and the SHA-256 of its bytes where sealing computed
    it (`Seal`); unchanged, and None, when signing is off."""
    if seal is None:
        return final, None
    return await anyio.to_thread.run_sync(_sealed, final, job, seal)


async def store(
    final: FinalImage, job: ImageJob, blobs: Blobs, sha256: str | None = None
) -> tuple[bytes, StoredImage]:
    """Encode (pixels, on a worker thread) and keep a streamed image, indexed at once; `sha256`:
    its bytes' hash when `sealed_one` has it already."""
    data = final.encoded if final.encoded is not None else await anyio.to_thread.run_sync(_bytes, final, job)
    return data, await blobs.put(data, job.output_format, MEDIA_TYPES[job.output_format], sha256)


class SealFailed(Exception):
    """An image could not be given its manifest: nothing was written (settlement.py answers it as
    the server error it is, not as a transaction to try again)."""


def write_all(
    finals: Sequence[FinalImage | None], job: ImageJob, blobs: Blobs, seal: Seal | None
) -> list[tuple[bytes, StoredImage] | None]:
    """Encode (pixels) and seal (unless `seal` is None) every image, then write their blob files,
    without their rows (the request's unit of work indexes them): a seal that fails leaves no
    blob behind, unindexed and so never swept. The bytes returned are the blobs': a response
    carries their base64, not the engine's (`FinalImage.b64` is of the unsealed bytes)."""
    datas: list[tuple[bytes, str | None] | None] = []
    for final in finals:
        data = None if final is None else _bytes(final, job)  # EngineFailed: an empty image
        if data is None or seal is None:
            datas.append(None if data is None else (data, None))
            continue
        try:
            datas.append(seal(data, job.output_format))
        except Exception as exc:
            raise SealFailed(f"sealing image {len(datas)} failed") from exc
    fmt, media_type = job.output_format, MEDIA_TYPES[job.output_format]
    return [None if d is None else (d[0], blobs.write(d[0], fmt, media_type, d[1])) for d in datas]


def sealing_bytes(finals: Sequence[FinalImage | None], job: ImageJob, seal: Seal | None) -> int:
    """About how many bytes `write_all` reads and writes: the images, and with a seal the inputs
    and mask that become its ingredients (read and hashed by c2pa)."""
    images = sum(len(f.encoded or b"") for f in finals if f is not None)
    if seal is None:
        return images
    return images + sum(i.source.size for i in job.inputs)


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
        for image in job.inputs:
            image.release()
