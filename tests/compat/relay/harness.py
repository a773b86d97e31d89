"""The relay tests' shared vocabulary: the channel keys and prices, the /admin/channels client,
and the helpers that drive the gateway with the official openai SDK and read what it billed."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import openai
from sqlalchemy import select

from imagegate.storage.db import make_engine
from imagegate.storage.tables import usage_records
from tests.conftest import LiveServer
from tests.fakes.upstream import USAGE, FakeUpstream

ADMIN = "admin-key-for-the-relay-tests"
PRIMARY_KEY = "sk-upstream-primary-7f3a9c2e51d84b06"
SECONDARY_KEY = "sk-upstream-secondary-0b4e8d13c6a92f57"
CHANNEL_KEYS = (PRIMARY_KEY, SECONDARY_KEY)
# gpt-image-1 list prices per token, in micro-dollars: $5, $10 and $40 per 1M tokens.
TEXT_IN, IMAGE_IN, IMAGE_OUT = 5, 10, 40
# What the operator pays the primary (the channel's own price table), per 1M tokens.
CHANNEL_PRICES = {"text_in_per_1m": 4_000_000, "image_in_per_1m": 8_000_000, "image_out_per_1m": 30_000_000}


def priced(usage: dict[str, Any], text: int = TEXT_IN, image: int = IMAGE_IN, out: int = IMAGE_OUT) -> int:
    details = usage["input_tokens_details"]
    return text * details["text_tokens"] + image * details["image_tokens"] + out * usage["output_tokens"]


UPSTREAM_COST = priced(USAGE)  # one request answered by a fake: 10 text tokens in, 272 image tokens out


class Admin:
    """The /admin/channels API; every channel it adds is removed when the test ends."""

    def __init__(self, live: LiveServer) -> None:
        self.http = httpx.Client(
            base_url=live.base_url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        )

    def add(
        self,
        name: str,
        fake: FakeUpstream,
        api_key: str,
        models: tuple[str, ...] = ("gpt-image-1",),
        **fields: Any,
    ) -> dict[str, Any]:
        body = {
            "name": f"{name}-{uuid.uuid4().hex[:6]}",
            "base_url": fake.api_base,
            "api_key": api_key,
            "models": list(models),
            **fields,
        }
        resp = self.http.post("/admin/channels", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def channel(self, ident: str | int) -> dict[str, Any]:
        resp = self.http.get(f"/admin/channels/{ident}")
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def channels(self) -> list[dict[str, Any]]:
        return self.http.get("/admin/channels").json()["data"]  # type: ignore[no-any-return]

    def remove_all(self) -> None:
        for channel in self.channels():
            self.http.delete(f"/admin/channels/{channel['id']}")


def sdk(live: LiveServer, secret: str, **options: Any) -> openai.OpenAI:
    options = {"max_retries": 0, "timeout": 30, **options}
    return openai.OpenAI(base_url=live.api_base, api_key=secret, **options)


def spent_micros(live: LiveServer, secret: str) -> int:
    resp = httpx.get(live.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    return round(resp.json()["spent_usd"] * 1_000_000)


def record(live: LiveServer, request_id: str) -> dict[str, Any]:
    """The usage record the gateway left for one request."""
    engine = make_engine(live.settings.resolved_database_url)
    try:
        deadline = time.monotonic() + 5  # a stream's record is written when the stream ends
        while True:
            with engine.connect() as conn:
                query = select(usage_records).where(usage_records.c.request_id == request_id)
                row = conn.execute(query).first()
            if row is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert row is not None, f"no usage record for {request_id}"
    return dict(row._mapping)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def generate(client: openai.OpenAI, **params: Any) -> tuple[openai.types.ImagesResponse, str]:
    """A medium 1024x1024 generation (its reservation covers the fakes' usage); the result and
    the request id."""
    params = {
        "model": "gpt-image-1",
        "prompt": "a red fox in a blue forest",
        "quality": "medium",
        "size": "1024x1024",
        **params,
    }
    raw = client.images.with_raw_response.generate(**params)
    return raw.parse(), raw.headers["x-request-id"]


def b64(data: str | None) -> bytes:
    assert data is not None
    return base64.b64decode(data)
