"""GET /metrics, scraped after real requests through the openai SDK and parsed with
prometheus-client's own parser; JSON logs read off a real server's output."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagegate.clock import SystemClock
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo
from tests.conftest import LiveServer, make_settings, run_server
from tests.fakes.upstream import FakeUpstream
from tests.services import Process, spawn_server

ADMIN = "admin-for-metrics"
BODY = {"model": "gpt-image-1", "prompt": "a secret garden of glass", "size": "256x256", "quality": "low"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("metrics"), admin_key=ADMIN, job_runners=0)
    with run_server(settings) as server:
        yield server


def scrape(base_url: str, admin: str | None = ADMIN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"Authorization": f"Bearer {admin}"} if admin else {}
    resp = httpx.get(base_url + "/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_admin_key(live: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer sk-not-the-admin"}):
        resp = httpx.get(live.base_url + "/metrics", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "invalid_admin_key"


def test_images_requests_images_and_charges_are_counted_exactly(live: LiveServer) -> None:
    before = scrape(live.base_url)
    secret = live.new_key("metrics-money")
    with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
        for _ in range(3):
            client.images.generate(**BODY)  # type: ignore[arg-type]
    spent = httpx.get(live.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}).json()[
        "spent_usd"
    ]
    after = scrape(live.base_url)
    labels = {"endpoint": "generations", "model": "gpt-image-1", "engine": "placeholder", "status": "200"}
    name = "imagegate_image_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 3
    images = "imagegate_images_total"
    assert (
        value(after, images, model="gpt-image-1", engine="placeholder")
        - value(before, images, model="gpt-image-1", engine="placeholder")
        == 3
    )
    charged = "imagegate_charged_microdollars_total"
    delta = value(after, charged, model="gpt-image-1") - value(before, charged, model="gpt-image-1")
    assert delta == round(spent * 1e6) > 0  # integers of micro-dollars, the balance's own
    route = {"method": "POST", "route": "/v1/images/generations", "status": "200"}
    assert value(after, "imagegate_http_requests_total", **route) >= 3
    count = "imagegate_image_request_duration_seconds_count"
    assert value(after, count, endpoint="generations", model="gpt-image-1", engine="placeholder") >= 3


def test_rate_limit_rejections_are_counted_by_code(live: LiveServer) -> None:
    before = scrape(live.base_url)
    secret = live.new_key("metrics-limited", rpm=1)
    headers = {"Authorization": f"Bearer {secret}"}
    statuses = [
        httpx.post(live.api_base + "/images/generations", json=BODY, headers=headers).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 429, 429]
    after = scrape(live.base_url)
    name, labels = "imagegate_rejections_total", {"status": "429", "code": "rate_limit_exceeded"}
    assert value(after, name, **labels) - value(before, name, **labels) == 2


def test_quota_rejections_are_counted_apart_from_rate_limits(live: LiveServer) -> None:
    before = scrape(live.base_url)
    secret = live.new_key("metrics-broke", credit_micros=0)
    with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as raised:
            client.images.generate(**BODY)  # type: ignore[arg-type]
    assert raised.value.code == "insufficient_quota"
    after = scrape(live.base_url)
    name = "imagegate_rejections_total"
    quota = {"status": "429", "code": "insufficient_quota"}
    assert value(after, name, **quota) - value(before, name, **quota) == 1
    limited = {"status": "429", "code": "rate_limit_exceeded"}
    assert value(after, name, **limited) == value(before, name, **limited)
    charged = "imagegate_charged_microdollars_total"
    assert value(after, charged, model="gpt-image-1") == value(before, charged, model="gpt-image-1")


def test_channel_attempts_breaker_state_and_queued_jobs(live: LiveServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with FakeUpstream() as fake:
        channel = {
            "name": "metered",
            "base_url": fake.api_base,
            "api_key": "sk-x",
            "models": ["metered-model"],
        }
        made = httpx.post(live.base_url + "/admin/channels", json=channel, headers=admin)
        assert made.status_code == 201, made.text
        try:
            secret = live.new_key("metrics-channel")
            headers = {"Authorization": f"Bearer {secret}"}
            ok = httpx.post(
                live.api_base + "/images/generations",
                json={**BODY, "model": "metered-model"},
                headers=headers,
            )
            assert ok.status_code == 200, ok.text
            for _ in range(2):  # queued: this server runs no jobs
                queued = httpx.post(
                    live.api_base + "/images/generations",
                    json=BODY,
                    headers={**headers, "Prefer": "respond-async"},
                )
                assert queued.status_code == 202
        finally:
            httpx.delete(f"{live.base_url}/admin/channels/{made.json()['id']}", headers=admin)
    samples = scrape(live.base_url)
    assert value(samples, "imagegate_channel_attempts_total", channel="metered", outcome="ok") == 1
    assert value(samples, "imagegate_channel_breaker_state", channel="metered") == 0  # closed
    assert value(samples, "imagegate_jobs", status="queued") == 2
    assert value(samples, "imagegate_jobs", status="completed") == 0


def test_open_and_off(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path / "open", metrics="open")) as server:
        assert "imagegate_jobs" in {name for name, _ in scrape(server.base_url, admin=None)}
    with run_server(make_settings(tmp_path / "off", metrics="off", admin_key=ADMIN)) as server:
        resp = httpx.get(server.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
        assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error"


def test_two_workers_are_scraped_as_one(tmp_path: Path) -> None:
    with spawn_server(tmp_path, quiet=True, IMAGEGATE_WORKERS="2", IMAGEGATE_METRICS="open") as server:
        repo = KeyRepo(make_engine(f"sqlite:///{tmp_path / 'imagegate.db'}"), SystemClock())
        secret = repo.create("k", "internal", credit_micros=10**9)[1]
        repo.engine.dispose()

        def one(_: int) -> int:  # a connection each: the kernel spreads them over both workers
            headers = {"Authorization": f"Bearer {secret}"}
            return httpx.post(server.api_base + "/images/generations", json=BODY, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(24))) == {200}
        totals = [
            value(
                scrape(server.base_url, admin=None),
                "imagegate_images_total",
                model="gpt-image-1",
                engine="placeholder",
            )
            for _ in range(4)  # whichever worker answers the scrape
        ]
    assert totals == [24.0] * 4


def test_two_servers_sharing_a_multiprocess_directory_are_scraped_as_one(tmp_path: Path) -> None:
    """Two `imagegate serve` processes of their own (one worker each, different ports), one data
    directory and one PROMETHEUS_MULTIPROC_DIR: a scrape of either counts both's requests."""
    shared = tmp_path / "prometheus"
    shared.mkdir()

    def serve() -> contextlib.AbstractContextManager[Process]:
        return spawn_server(
            tmp_path, quiet=True, IMAGEGATE_METRICS="open", PROMETHEUS_MULTIPROC_DIR=str(shared)
        )

    with serve() as first, serve() as second:
        assert first.base_url != second.base_url
        repo = KeyRepo(make_engine(f"sqlite:///{tmp_path / 'imagegate.db'}"), SystemClock())
        secret = repo.create("k", "internal", credit_micros=10**9)[1]
        repo.engine.dispose()
        headers = {"Authorization": f"Bearer {secret}"}
        for server, count in ((first, 2), (second, 3)):
            for _ in range(count):
                resp = httpx.post(server.api_base + "/images/generations", json=BODY, headers=headers)
                assert resp.status_code == 200, resp.text
        route = {"method": "POST", "route": "/v1/images/generations", "status": "200"}
        for server in (first, second):
            samples = scrape(server.base_url, admin=None)
            assert value(samples, "imagegate_images_total", model="gpt-image-1", engine="placeholder") == 5
            assert value(samples, "imagegate_http_requests_total", **route) == 5


def test_json_logs_carry_each_request_and_never_a_secret_or_the_prompt(tmp_path: Path) -> None:
    with spawn_server(tmp_path, IMAGEGATE_LOG_FORMAT="json", IMAGEGATE_ADMIN_KEY=ADMIN) as server:
        made = httpx.post(
            server.base_url + "/admin/keys",
            json={"name": "logged", "tier": "internal"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).json()
        resp = httpx.post(
            server.api_base + "/images/generations",
            json=BODY,
            headers={"Authorization": f"Bearer {made['secret']}"},
        )
        assert resp.status_code == 200
        output = server.stop()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([line for line in output.splitlines() if line.strip()]), output[:2000]
    [access] = [line for line in lines if line["logger"] == "imagegate.access"]
    assert access["request_id"] == resp.headers["x-request-id"]
    assert access["key_id"] == made["id"] and access["status"] == 200 and access["model"] == "gpt-image-1"
    assert access["engine"] == "placeholder" and access["images"] == 1 and access["cost_micros"] > 0
    assert isinstance(access["latency_ms"], int) and "prompt" not in access
    assert made["secret"] not in output and ADMIN not in output and BODY["prompt"] not in output
