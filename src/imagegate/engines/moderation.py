"""A moderation endpoint in OpenAI's shape (`POST /v1/moderations`) on a configured channel, asked
before anything is generated (settings `moderation_channel`): the categories it flags block the
prompt. If it cannot answer, the request is refused (503): a configured check fails closed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import orjson

from imagegate.engines.upstream import UpstreamConfig
from imagegate.errors import ServiceUnavailable

MODEL = "omni-moderation-latest"


@dataclass(frozen=True)
class Moderator:
    channel: UpstreamConfig
    session: aiohttp.ClientSession
    model: str = MODEL

    async def flagged(self, prompt: str) -> list[str]:
        """The categories the endpoint flags for `prompt` (empty: allowed)."""
        url = self.channel.base_url.rstrip("/") + "/moderations"
        headers = {"Authorization": f"Bearer {self.channel.api_key}", "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(self.channel.timeout_s):
                async with self.session.post(
                    url,
                    data=orjson.dumps({"model": self.model, "input": prompt}),
                    headers=headers,
                    allow_redirects=False,
                ) as resp:
                    body = orjson.loads(await resp.read()) if resp.status == 200 else None
            result = body["results"][0] if isinstance(body, dict) else None
            if not isinstance(result, dict):
                raise ValueError("no result")
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ServiceUnavailable(
                "The moderation check this gateway requires could not be made; try again shortly."
            ) from exc
        if not result.get("flagged"):
            return []
        categories = result.get("categories") or {}
        flagged = (
            sorted(str(name) for name, hit in categories.items() if hit)
            if isinstance(categories, dict)
            else []
        )
        return flagged or ["flagged"]
