"""The app in-process, through httpx's ASGITransport (no socket, no thread): the same contract as
the live-server suites in tests/compat/, next to them, quick enough to run on every change."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from imagegate.http.app import create_app
from tests.conftest import make_settings
from tests.imaging import png
from tests.schemas import validate

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(tmp_path))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    secret = app.state.stores.keys.create("inprocess", "internal", credit_micros=10**9)[1]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {secret}"}
    ) as http:
        yield http


async def test_a_generation(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/images/generations", json={"prompt": "a red fox", "size": "1024x1024", "quality": "low"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate("ImagesResponse", {k: v for k, v in body.items() if k != "seed"})
    assert base64.b64decode(body["data"][0]["b64_json"])[:8] == b"\x89PNG\r\n\x1a\n"
    url = body["data"][0]["url"]
    assert url.startswith("http://testserver/v1/images/files/")
    stored = await client.get(url[len("http://testserver") :])
    assert stored.status_code == 200 and stored.content == base64.b64decode(body["data"][0]["b64_json"])


async def test_a_multipart_edit(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/images/edits",
        data={"prompt": "snow", "size": "1024x1024", "quality": "low"},
        files={"image": ("a.png", png(64, 64), "image/png")},
    )
    assert resp.status_code == 200, resp.text
    validate("ImagesResponse", {k: v for k, v in resp.json().items() if k != "seed"})


async def test_models_and_an_error_in_openais_shape(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()
    assert "gpt-image-1" in [m["id"] for m in models["data"]]
    resp = await client.post("/v1/images/generations", json={"prompt": "x", "size": "13x13"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["param"] == "size"
    anonymous = await client.post(
        "/v1/images/generations", json={"prompt": "x"}, headers={"Authorization": "Bearer nope"}
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"


async def test_a_stream(client: httpx.AsyncClient) -> None:
    body = {"prompt": "a city", "size": "64x64", "quality": "low", "stream": True, "partial_images": 1}
    async with client.stream("POST", "/v1/images/generations", json=body) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) async for line in resp.aiter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["image_generation.partial_image", "image_generation.completed"]
