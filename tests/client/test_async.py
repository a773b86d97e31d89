"""AsyncClient: the same core as Client, driven by httpx.AsyncClient and an awaitable sleep."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imagegate.client import (
    APIConnectionError,
    AsyncClient,
    BadRequestError,
    Client,
    InsufficientQuotaError,
    InternalServerError,
)
from tests.client.conftest import SleepRecorder
from tests.client.fake_upstream import FakeUpstream
from tests.conftest import LiveServer
from tests.imaging import png

QUOTA = {
    "error": {
        "message": "You exceeded your current quota.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def test_async_retries_with_the_same_key_and_backoff(
    fake: FakeUpstream, async_fake_client: AsyncClient, sleeps: SleepRecorder
) -> None:
    fake.push(("status", 429, {"error": {"message": "slow"}}, {"retry-after": "1"}), ("reset",))

    async def main() -> None:
        async with async_fake_client as client:
            result = await client.generate("async fox", quality="low")
            assert len(result) == 1
            with pytest.raises(InsufficientQuotaError):
                fake.push(("status", 429, QUOTA, {"retry-after": "1"}))
                await client.generate("no money")

    asyncio.run(main())
    posts = fake.posts()
    assert len(posts) == 4  # three attempts, then one: insufficient_quota is not retried
    keys = {p.headers["idempotency-key"] for p in posts[:3]}
    assert len(keys) == 1 and posts[3].headers["idempotency-key"] not in keys
    assert sleeps.retry_delays == [1.0, pytest.approx(0.875)]


def test_async_no_retry_on_400_and_gives_up_on_500s(
    fake: FakeUpstream, async_fake_client: AsyncClient, sleeps: SleepRecorder
) -> None:
    async def main() -> None:
        async with async_fake_client as client:
            fake.push(
                ("status", 400, {"error": {"message": "bad", "param": "size", "code": "invalid_value"}}, {})
            )
            with pytest.raises(BadRequestError):
                await client.generate("x", size="1x1")
            fake.push(*[("status", 503, {"error": {"message": "down"}}, {})] * 3)
            with pytest.raises(InternalServerError):
                await client.generate("y")

    asyncio.run(main())
    assert len(fake.posts()) == 4
    assert sleeps.retry_delays == [pytest.approx(0.4375), pytest.approx(0.875)]


def test_async_against_the_live_server(server: LiveServer, api_key: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncClient(api_key, server.api_base, cache=tmp_path) as client:
            result = await client.generate("async fox", size="1536x1024", quality="low")
            assert result.image.to_pil().size == (1536, 1024) and result.cost_usd > 0
            again = await client.generate("async fox", size="1536x1024", quality="low")
            assert again.cached and again.image.bytes == result.image.bytes
            edited = await client.edit([png(64, 64)], "add a hat", quality="low")
            assert edited.size == "1024x1024"  # auto: the model size nearest the input's ratio
            events = [e async for e in client.stream("stream", partial_images=1, quality="low")]
            assert [e.partial for e in events] == [True, False]
            assert await client.estimate_cost(quality="low") == pytest.approx(0.01088)
            assert any(m["id"] == "gpt-image-1" for m in await client.models())
            stats = client.monitor.stats()
            assert stats.total_requests == 4 and stats.cache_hits == 1

    asyncio.run(main())


def test_streams_that_break_or_are_not_streams(fake: FakeUpstream, fake_client: Client) -> None:
    fake.push(("sse", 2))
    events = list(fake_client.stream("s", partial_images=2))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert fake.posts()[0].json()["stream"] is True and fake.posts()[0].json()["partial_images"] == 2
    fake.push(("sse-cut",))
    with pytest.raises(APIConnectionError, match="cut off"):
        list(fake_client.stream("cut"))
    fake.push(("ok",))  # a server that ignores `stream` and answers JSON
    plain = list(fake_client.stream("json"))
    assert [e.type for e in plain] == ["image_generation.completed"] and plain[0].cost_usd > 0
    kinds = [(r.kind, r.success, r.error_code) for r in fake_client.monitor.records]
    assert kinds == [
        ("generate-stream", True, None),
        ("generate-stream", False, "connection_error"),
        ("generate-stream", True, None),
    ]


def test_async_stream_against_the_fake(fake: FakeUpstream, async_fake_client: AsyncClient) -> None:
    fake.push(("sse", 1), ("sse-cut",))

    async def main() -> None:
        async with async_fake_client as client:
            assert len([e async for e in client.stream("s")]) == 2
            with pytest.raises(APIConnectionError):
                [e async for e in client.stream("cut")]

    asyncio.run(main())
