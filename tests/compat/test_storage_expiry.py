"""Signed URLs expire and stored images are swept, on a server with a manual clock."""

from __future__ import annotations

import anyio
import httpx
import openai

from imagegate.clock import ManualClock
from tests.conftest import LiveServer


def test_url_expires_and_image_is_swept(clocked_server: LiveServer) -> None:
    clock = clocked_server.clock
    assert isinstance(clock, ManualClock)
    key = clocked_server.new_key()
    with openai.OpenAI(base_url=clocked_server.api_base, api_key=key, max_retries=0) as client:
        result = client.images.generate(prompt="ephemeral", quality="low", response_format="url")
    assert result.data is not None and result.data[0].url
    url = result.data[0].url
    assert httpx.get(url).status_code == 200
    clock.advance(clocked_server.settings.url_ttl_s + 1)
    expired = httpx.get(url)
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "invalid_signature"

    # Past the retention the sweeper deletes the blob; a freshly signed URL then finds nothing.
    settings = clocked_server.settings
    clock.advance(settings.image_retention_s)
    name = url.split("/files/")[1].split("?")[0]
    blob = settings.data_dir / "blobs" / name[:2] / name
    assert blob.exists()
    from imagegate.storage.blobs import ImageStore, open_backend
    from imagegate.storage.db import make_engine

    engine = make_engine(settings.resolved_database_url)
    store = ImageStore(open_backend(settings), engine, clock, settings.image_retention_s)
    assert anyio.run(anyio.to_thread.run_sync, store.sweep) >= 1
    engine.dispose()
    assert not blob.exists()
