"""Tiers and rate limits through the API, across two gateway processes, and crash recovery."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import LiveServer, make_settings, run_server
from tests.services import spawn_server

FROZEN = "1800000000"  # every clock read in these servers returns this instant
SMALL = {"prompt": "tiny", "size": "64x64", "quality": "low", "output_format": "jpeg"}
# Big enough that concurrent requests overlap (about a second of work each on 2 cores).
SLOW = {"prompt": "slow", "size": "3840x2160", "quality": "high", "output_format": "png"}


def _key(base_url: str, admin: str, **fields: object) -> str:
    resp = httpx.post(
        base_url + "/admin/keys", json={"name": "k", **fields}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["secret"])


def test_free_tier_rpm_with_headers(tmp_path: Path) -> None:
    from imagegate.clock import ManualClock

    settings = make_settings(tmp_path, admin_key="adm")
    with run_server(settings, ManualClock()) as live:
        secret = _key(live.base_url, "adm", tier="free", credit_usd="10")
        with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
            raw = [client.images.with_raw_response.generate(**SMALL) for _ in range(20)]  # type: ignore[arg-type]
            assert raw[0].headers["x-ratelimit-limit-requests"] == "20"
            assert raw[0].headers["x-ratelimit-remaining-requests"] == "19"
            assert raw[-1].headers["x-ratelimit-remaining-requests"] == "0"
            assert raw[-1].headers["x-ratelimit-reset-requests"] == "1m0s"
            with pytest.raises(openai.RateLimitError) as info:
                client.images.generate(**SMALL)  # type: ignore[arg-type]
        err = info.value
        assert err.code == "rate_limit_exceeded" and "requests per minute" in err.message
        assert err.response.headers["retry-after"] == "3"  # one token per 60/20 s
        assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert isinstance(live.clock, ManualClock)
        live.clock.advance(3)
        with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
            assert client.images.generate(**SMALL).data  # type: ignore[arg-type]


def test_images_per_minute_counts_n(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, admin_key="adm", frozen_time=float(FROZEN))
    with run_server(settings) as live:
        secret = _key(live.base_url, "adm", tier="tier1", ipm=20, credit_usd="10")
        with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
            assert len(client.images.generate(n=10, **SMALL).data or []) == 10  # type: ignore[arg-type]
            assert len(client.images.generate(n=10, **SMALL).data or []) == 10  # type: ignore[arg-type]
            with pytest.raises(openai.RateLimitError) as info:
                client.images.generate(n=1, **SMALL)  # type: ignore[arg-type]
    assert "images per minute" in info.value.message


def _fire(urls: list[str], secret: str, body: dict[str, object], count: int) -> list[tuple[int, str]]:
    """`count` requests at once (a barrier), spread over `urls`; returns (status, code or '')."""
    barrier = threading.Barrier(count)
    out: list[tuple[int, str]] = []

    def one(i: int) -> None:
        barrier.wait()
        resp = httpx.post(
            urls[i % len(urls)] + "/v1/images/generations",
            json=body,
            timeout=120,
            headers={"Authorization": f"Bearer {secret}"},
        )
        out.append((resp.status_code, "" if resp.status_code == 200 else resp.json()["error"]["code"]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_gateways_share_exact_limits(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    env = {
        "IMAGEGATE_DATABASE_URL": postgres_url,
        "IMAGEGATE_REDIS_URL": redis_url,
        "IMAGEGATE_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
        "IMAGEGATE_ADMIN_KEY": "adm",
        "IMAGEGATE_FROZEN_TIME": FROZEN,
    }
    with spawn_server(tmp_path / "a", **env) as a, spawn_server(tmp_path / "b", **env) as b:
        urls = [a.base_url, b.base_url]
        free = _key(a.base_url, "adm", tier="free", credit_usd="10")
        statuses = [
            r[0]
            for r in _fire(urls, free, SMALL, 8)
            + _fire(urls, free, SMALL, 8)
            + _fire(urls, free, SMALL, 8)
            + _fire(urls, free, SMALL, 6)
        ]
        assert statuses.count(200) == 20 and statuses.count(429) == 10

        busy = _key(b.base_url, "adm", tier="tier2", credit_usd="100")
        results = _fire(urls, busy, SLOW, 12)
        assert [s for s, _ in results].count(200) == 5, results
        assert results.count((429, "rate_limit_exceeded")) == 7


def test_redis_down_fails_closed_or_open(tmp_path: Path) -> None:
    env = {"IMAGEGATE_REDIS_URL": "redis://127.0.0.1:1/0", "IMAGEGATE_ADMIN_KEY": "adm"}
    with spawn_server(tmp_path / "closed", **env) as closed:
        secret = _key(closed.base_url, "adm", tier="free", credit_usd="1")
        with openai.OpenAI(base_url=closed.api_base, api_key=secret, max_retries=0) as client:
            with pytest.raises(openai.InternalServerError) as info:
                client.images.generate(**SMALL)  # type: ignore[arg-type]
        assert info.value.status_code == 503 and info.value.code == "service_unavailable"
    with spawn_server(tmp_path / "open", IMAGEGATE_RATE_LIMIT_FAIL_OPEN="true", **env) as opened:
        secret = _key(opened.base_url, "adm", tier="free", credit_usd="1")
        with openai.OpenAI(base_url=opened.api_base, api_key=secret, max_retries=0) as client:
            assert client.images.generate(**SMALL).data  # type: ignore[arg-type]


def test_crash_mid_request_then_sweep_restores_the_balance(tmp_path: Path) -> None:
    env = {
        "IMAGEGATE_ADMIN_KEY": "adm",
        "IMAGEGATE_RESERVATION_TIMEOUT_S": "2",
        "IMAGEGATE_SWEEP_INTERVAL_S": "1",
    }
    with spawn_server(tmp_path, **env) as gateway:
        secret = _key(gateway.base_url, "adm", tier="internal", credit_usd="50")
        auth = {"Authorization": f"Bearer {secret}"}
        body = {**SLOW, "n": 4}
        thread = threading.Thread(target=lambda: _swallow(gateway.api_base, body, auth))
        thread.start()
        deadline = time.monotonic() + 30
        while httpx.get(gateway.api_base + "/usage", headers=auth).json()["balance_usd"] == 50:
            assert time.monotonic() < deadline, "the request never reserved its cost"
            time.sleep(0.02)
        gateway.proc.send_signal(signal.SIGKILL)  # dies holding the reservation
        gateway.proc.wait()
        thread.join()
    with spawn_server(tmp_path, **env) as restarted:
        deadline = time.monotonic() + 30
        while httpx.get(restarted.api_base + "/usage", headers=auth).json()["balance_usd"] != 50:
            assert time.monotonic() < deadline, "the sweeper did not release the reservation"
            time.sleep(0.2)


def _swallow(api_base: str, body: dict[str, object], headers: dict[str, str]) -> None:
    try:
        httpx.post(api_base + "/images/generations", json=body, headers=headers, timeout=60)
    except httpx.TransportError:
        pass  # the server was killed mid-request, as intended


def test_admin_api_keys_credit_usage(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path, admin_key="adm", trial_credit_usd="5")) as live:
        headers = {"Authorization": "Bearer adm"}
        with httpx.Client(base_url=live.base_url + "/admin", headers=headers) as admin:
            _admin_checks(live, admin)


def _admin_checks(live: LiveServer, admin: httpx.Client) -> None:
    created = admin.post("/keys", json={"name": "shop", "tier": "tier1", "rpm": 7}).json()
    assert created["balance_usd"] == 5 and created["limits"]["rpm"] == 7
    assert created["limits"]["concurrency"] == 5
    kid = created["id"]
    assert admin.post(f"/keys/{kid}/credits", json={"amount_usd": "2.5"}).json()["balance_usd"] == 7.5
    patched = admin.patch(f"/keys/{kid}", json={"rpm": None, "multiplier": "1.2"}).json()
    assert patched["limits"]["rpm"] == 60 and patched["multiplier"] == 1.2
    with openai.OpenAI(base_url=live.api_base, api_key=created["secret"], max_retries=0) as client:
        client.images.generate(**SMALL)  # type: ignore[arg-type]
    usage = admin.get("/usage").json()["data"]
    assert usage[0]["key_id"] == kid and usage[0]["requests"] == 1 and usage[0]["cost_usd"] > 0
    assert [k["id"] for k in admin.get("/keys").json()["data"]] == [kid]
    assert admin.delete(f"/keys/{kid}").json()["status"] == "revoked"
    bad = httpx.get(live.base_url + "/admin/keys", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_admin_key"
    assert admin.post("/keys", json={"name": "x", "tier": "gold"}).status_code == 400
    assert admin.post(f"/keys/{kid}/credits", json={"amount_usd": "-1"}).status_code == 400
    assert admin.get("/keys/999").status_code == 404


def test_admin_api_disabled_without_a_key(server: LiveServer) -> None:
    resp = httpx.get(server.base_url + "/admin/keys", headers={"Authorization": "Bearer x"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "admin_disabled"
