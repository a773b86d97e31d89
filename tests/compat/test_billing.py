"""Credits through the API: exact charges, insufficient_quota, idempotent retries, /v1/usage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import openai
import pytest

from tests.conftest import LiveServer, make_settings, run_server

# gpt-image-1 list prices per token, in micro-dollars: $5, $10 and $40 per 1M tokens.
TEXT_IN, IMAGE_IN, IMAGE_OUT = 5, 10, 40


def cost(usage: openai.types.images_response.Usage) -> int:
    d = usage.input_tokens_details
    return TEXT_IN * d.text_tokens + IMAGE_IN * d.image_tokens + IMAGE_OUT * usage.output_tokens


def account(server: LiveServer, secret: str) -> dict[str, object]:
    resp = httpx.get(server.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_charges_are_exact_and_visible(server: LiveServer) -> None:
    secret = server.new_key("billing", credit_micros=1_000_000)
    with openai.OpenAI(base_url=server.api_base, api_key=secret, max_retries=0) as client:
        first = client.images.generate(prompt="a red fox", quality="low", size="1024x1024")
        second = client.images.edit(
            image=("a.png", _png(), "image/png"), prompt="snow", quality="medium", size="1024x1536"
        )
    assert first.usage and second.usage
    spent = cost(first.usage) + cost(second.usage)
    assert cost(first.usage) == TEXT_IN * first.usage.input_tokens + 10_880  # 272 tokens x $40/M
    acct = account(server, secret)
    assert acct["balance_usd"] == (1_000_000 - spent) / 1e6
    assert acct["spent_usd"] == spent / 1e6
    assert acct["requests"] == 2 and acct["images"] == 2


def test_insufficient_quota_before_generating(server: LiveServer) -> None:
    secret = server.new_key("poor", credit_micros=10_000)  # less than one low 1024x1024 image
    with openai.OpenAI(base_url=server.api_base, api_key=secret, max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as info:
            client.images.generate(prompt="a red fox", quality="low", size="1024x1024")
    assert info.value.code == "insufficient_quota" and info.value.type == "insufficient_quota"
    assert "retry-after" not in info.value.response.headers  # it needs a top-up, not a wait
    acct = account(server, secret)
    assert acct["balance_usd"] == 0.01 and acct["spent_usd"] == 0
    assert acct["requests"] == 1 and acct["images"] == 0


def test_multiplier_prices_a_key_above_list(server: LiveServer) -> None:
    secret = server.new_key("reseller", credit_micros=1_000_000, multiplier_ppm=1_500_000)
    with openai.OpenAI(base_url=server.api_base, api_key=secret, max_retries=0) as client:
        result = client.images.generate(prompt="x", quality="low", size="1024x1024")
    assert result.usage
    base = cost(result.usage)
    assert account(server, secret)["spent_usd"] == -(-base * 3 // 2) / 1e6


def test_idempotent_retry_is_charged_once(server: LiveServer) -> None:
    secret = server.new_key("idem", credit_micros=1_000_000)
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    with openai.OpenAI(base_url=server.api_base, api_key=secret, max_retries=0) as client:
        a = client.images.with_raw_response.generate(prompt="once", quality="low", extra_headers=idem)
        b = client.images.with_raw_response.generate(prompt="once", quality="low", extra_headers=idem)
        first, again = a.parse(), b.parse()
        assert b.headers["idempotent-replayed"] == "true"
        assert first.data and again.data and first.data[0].b64_json == again.data[0].b64_json
        assert again.data[0].url and httpx.get(again.data[0].url).status_code == 200
        assert first.usage
        assert account(server, secret)["spent_usd"] == cost(first.usage) / 1e6
        with pytest.raises(openai.ConflictError) as info:
            client.images.generate(prompt="a different body", quality="low", extra_headers=idem)
    assert info.value.code == "idempotency_key_reused"


def test_idempotent_multipart_retry_matches_despite_new_boundary(server: LiveServer) -> None:
    secret = server.new_key("idem-edit", credit_micros=1_000_000)
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    with openai.OpenAI(base_url=server.api_base, api_key=secret, max_retries=0) as client:
        for _ in range(2):
            client.images.edit(
                image=("a.png", _png(), "image/png"), prompt="p", quality="low", extra_headers=idem
            )
    assert account(server, secret)["requests"] == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def money_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    settings = make_settings(tmp_path, database_url=url)
    with run_server(settings) as live:
        yield live


def test_200_concurrent_requests_for_exactly_50_images(money_server: LiveServer) -> None:
    body = {"prompt": "tiny", "size": "64x64", "quality": "low", "output_format": "jpeg"}
    probe_key = money_server.new_key("probe")
    probe = httpx.post(
        money_server.api_base + "/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {probe_key}"},
        timeout=60,
    ).json()
    price = TEXT_IN * probe["usage"]["input_tokens"] + IMAGE_OUT * probe["usage"]["output_tokens"]
    secret = money_server.new_key("fifty", credit_micros=50 * price)
    statuses: list[tuple[int, str | None]] = []

    async def one(client: httpx.AsyncClient) -> None:
        resp = await client.post("/images/generations", json=body)
        code = resp.json()["error"]["code"] if resp.status_code != 200 else None
        statuses.append((resp.status_code, code))

    async def main() -> None:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=money_server.api_base,
            timeout=120,
            limits=limits,
            headers={"Authorization": f"Bearer {secret}"},
        ) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(one, client)

    anyio.run(main)
    assert statuses.count((200, None)) == 50
    assert statuses.count((429, "insufficient_quota")) == 150
    acct = account(money_server, secret)
    assert acct["balance_usd"] == 0 and acct["spent_usd"] == 50 * price / 1e6 and acct["images"] == 50
    repo = money_server.keys()
    from imagegate.storage.ledger import Ledger

    ledger = Ledger(repo.engine, money_server.clock)
    key = repo.find(secret[:12])
    assert key is not None
    assert ledger.balance(key.id) == ledger.ledger_sum(key.id) == 0
    repo.engine.dispose()


def _png() -> bytes:
    from tests.imaging import png

    return png(1024, 1024)
