"""Stage: encode a finished image and keep it in the content-addressed store.

Contract: `encode(image, job)` renders pixels to the job's output format (worker thread);
`store(final, job, images)` returns the encoded bytes and the StoredImage row, so the
response can carry both b64_json and a signed URL.
"""

from __future__ import annotations

import anyio.to_thread
from PIL import Image

from imagegate.domain import FinalImage, ImageJob
from imagegate.errors import EngineFailed
from imagegate.images.encode import MEDIA_TYPES, encode_image
from imagegate.storage.blobs import ImageStore, StoredImage


async def encode(image: Image.Image, job: ImageJob) -> bytes:
    return await anyio.to_thread.run_sync(
        lambda: encode_image(
            image,
            job.output_format,
            compression=job.output_compression,
            transparent=job.background == "transparent",
        )
    )


async def store(final: FinalImage, job: ImageJob, images: ImageStore) -> tuple[bytes, StoredImage]:
    if final.encoded is not None:
        data, fmt = final.encoded, job.output_format
    elif final.image is not None:
        data, fmt = await encode(final.image, job), job.output_format
    else:
        raise EngineFailed("The engine returned an empty image.")
    stored = await anyio.to_thread.run_sync(images.put, data, fmt, MEDIA_TYPES[fmt])
    return data, stored
