"""Asynchronous jobs (Prefer: respond-async) through the official openai SDK and raw HTTP: a 202
job polled to the same body a synchronous call returns, an edit with uploads, a webhook verified
with the `standardwebhooks` package, cancellation with a full refund, Idempotency-Key, and one
key never seeing another's jobs."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import standardwebhooks

from tests.conftest import LiveServer, make_settings, run_server
from tests.imaging import pixels, png
from tests.schemas import validate

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("jobs"), job_poll_s=0.05, job_lease_s=3.0, webhook_backoff_s=0.2
    )
    with run_server(settings) as live:
        yield live


@pytest.fixture(scope="module")
def idle_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """No runners: its jobs stay queued."""
    with run_server(make_settings(tmp_path_factory.mktemp("idle"), job_runners=0)) as live:
        yield live


def sdk(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0, timeout=30)


def submit(client: openai.OpenAI, **params: Any) -> tuple[dict[str, Any], httpx.Headers]:
    params = {"model": "gpt-image-1", "prompt": "a lighthouse at dusk", "size": "256x256", **params}
    params["extra_headers"] = {**ASYNC, **params.get("extra_headers", {})}
    raw = client.images.with_raw_response.generate(**params)
    assert raw.status_code == 202, raw.http_response.text
    return raw.http_response.json(), raw.headers


def poll(
    live: LiveServer, secret: str, job_id: str, until: tuple[str, ...] = ("completed", "failed", "cancelled")
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        resp = httpx.get(
            f"{live.api_base}/images/jobs/{job_id}", headers={"Authorization": f"Bearer {secret}"}
        )
        assert resp.status_code == 200, resp.text
        job = resp.json()
        if job["status"] in until or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)


def balance(live: LiveServer, secret: str) -> float:
    return httpx.get(live.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}).json()[
        "balance_usd"
    ]  # type: ignore[no-any-return]


def test_a_job_answers_202_at_once_and_completes_with_the_synchronous_body(gateway: LiveServer) -> None:
    secret = gateway.new_key("jobs-gen")
    with sdk(gateway, secret) as client:
        job, headers = submit(client, n=2, size="1024x1024", extra_body={"seed": 7})
        assert job["object"] == "image.job" and job["id"].startswith("imgjob_")
        assert job["status"] in ("queued", "in_progress") and job["model"] == "gpt-image-1"
        assert headers["location"] == f"{gateway.base_url}/v1/images/jobs/{job['id']}"
        done = poll(gateway, secret, job["id"])
        sync = client.images.generate(
            model="gpt-image-1", prompt="a lighthouse at dusk", size="1024x1024", n=2, extra_body={"seed": 7}
        )
    assert done["status"] == "completed" and done["finished_at"] >= done["created_at"]
    result = done["result"]
    validate("ImagesResponse", result)
    # The same images (each signed anew, so compared by their pixels).
    assert [pixels(base64.b64decode(d["b64_json"])) for d in result["data"]] == [
        pixels(base64.b64decode(d.b64_json or "")) for d in sync.data
    ]
    assert result["usage"] == sync.usage.model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert httpx.get(result["data"][0]["url"]).status_code == 200  # a signed URL, served here


def test_a_multipart_edit_job_keeps_its_uploads_until_it_runs(gateway: LiveServer) -> None:
    secret = gateway.new_key("jobs-edit")
    with sdk(gateway, secret) as client:
        raw = client.images.with_raw_response.edit(
            model="gpt-image-1",
            prompt="make it blue",
            image=[("a.png", png(128, 96), "image/png"), ("b.png", png(32, 32, "red"), "image/png")],
            size="128x96",
            extra_headers=ASYNC,
        )
    assert raw.status_code == 202
    done = poll(gateway, secret, raw.http_response.json()["id"])
    assert done["status"] == "completed" and len(done["result"]["data"]) == 1


def test_invalid_input_is_refused_before_the_202(gateway: LiveServer) -> None:
    secret = gateway.new_key("jobs-bad")
    with sdk(gateway, secret) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.images.generate(model="gpt-image-1", prompt="x", size="99999x2", extra_headers=ASYNC)
        assert bad.value.body["param"] == "size"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as streamed:
            client.images.generate(model="gpt-image-1", prompt="x", stream=True, extra_headers=ASYNC)
        assert streamed.value.body["param"] == "stream"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as hook:
            client.images.generate(
                model="gpt-image-1", prompt="x", extra_body={"webhook_url": "http://127.0.0.1:1/"}
            )
        assert hook.value.body["param"] == "webhook_url"  # type: ignore[index]
    assert balance(gateway, secret) == 1000.0  # nothing held by the refused submissions


def test_cancelling_a_queued_job_refunds_it_in_full(idle_gateway: LiveServer) -> None:
    secret = idle_gateway.new_key("jobs-cancel")
    with sdk(idle_gateway, secret) as client:
        job, _ = submit(client, quality="high", size="1024x1024")
        assert job["status"] == "queued"
        assert poll(idle_gateway, secret, job["id"], until=("queued",))["queue_position"] >= 0
        assert balance(idle_gateway, secret) < 1000.0  # the job's maximum is held
        resp = client.post(f"/images/jobs/{job['id']}/cancel", cast_to=httpx.Response)
    cancelled = resp.json()
    assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "job_cancelled"
    assert balance(idle_gateway, secret) == 1000.0


def test_only_the_owning_key_sees_or_cancels_a_job_and_listing_pages(idle_gateway: LiveServer) -> None:
    owner, other = idle_gateway.new_key("jobs-owner"), idle_gateway.new_key("jobs-other")
    with sdk(idle_gateway, owner) as client:
        ids = [submit(client, prompt=f"image {i}")[0]["id"] for i in range(3)]
    auth = {"Authorization": f"Bearer {other}"}
    for path in (f"/images/jobs/{ids[0]}", f"/images/jobs/{ids[0]}/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        resp = httpx.request(method, idle_gateway.api_base + path, headers=auth)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"
    headers = {"Authorization": f"Bearer {owner}"}
    first = httpx.get(idle_gateway.api_base + "/images/jobs", params={"limit": 2}, headers=headers).json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = httpx.get(
        idle_gateway.api_base + "/images/jobs",
        params={"limit": 2, "after": first["last_id"]},
        headers=headers,
    ).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert httpx.get(idle_gateway.api_base + "/images/jobs", headers=auth).json()["data"] == []


def test_an_idempotency_key_submits_one_job(idle_gateway: LiveServer) -> None:
    secret = idle_gateway.new_key("jobs-idem")
    with sdk(idle_gateway, secret) as client:
        first, _ = submit(client, extra_headers={**ASYNC, "Idempotency-Key": "batch-1-item-1"})
        held = balance(idle_gateway, secret)
        again, _ = submit(client, extra_headers={**ASYNC, "Idempotency-Key": "batch-1-item-1"})
    assert again["id"] == first["id"] and balance(idle_gateway, secret) == held


class Receiver:
    """A webhook receiver on loopback: records each POST (headers and body); fails the first
    `fail` of them with a 500."""

    def __init__(self, fail: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail = fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if len(receiver.received) <= receiver.fail else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/images"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_webhook_is_signed_per_standard_webhooks_and_retried(gateway: LiveServer) -> None:
    receiver = Receiver(fail=1)
    secret = gateway.new_key("jobs-hook")
    try:
        with sdk(gateway, secret) as client:
            job, _ = submit(client, extra_body={"webhook_url": receiver.url})
            signing = job["webhook_secret"]  # made for the key's first webhook, shown once
            assert signing.startswith("whsec_")
            poll(gateway, secret, job["id"])
            deadline = time.monotonic() + 15
            while len(receiver.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            again, _ = submit(client, extra_body={"webhook_url": receiver.url})
            assert "webhook_secret" not in again
    finally:
        receiver.close()
    assert len(receiver.received) == 2  # the first answered 500: delivered again
    (first_headers, first_body), (headers, body) = receiver.received
    assert headers["webhook-id"] == first_headers["webhook-id"] == f"msg_{job['id']}"  # the same message
    payload = standardwebhooks.Webhook(signing).verify(body, headers)
    assert payload["type"] == "image.job.completed" and payload["data"]["id"] == job["id"]
    item = payload["data"]["result"]["data"][0]
    assert "b64_json" not in item and httpx.get(item["url"]).status_code == 200  # small: URLs only
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing).verify(body.replace(b"completed", b"failed"), headers)
    status = poll(gateway, secret, job["id"])
    assert status["webhook"] == {"status": "delivered", "attempts": 2}
    rotated = httpx.post(
        gateway.api_base + "/webhook_secret", headers={"Authorization": f"Bearer {secret}"}
    ).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != signing


def test_a_webhook_to_a_private_address_is_never_sent(tmp_path: Path) -> None:
    receiver = Receiver()
    settings = make_settings(tmp_path, fetch_private_urls=False, job_poll_s=0.05, webhook_max_attempts=1)
    try:
        with run_server(settings) as live:
            secret = live.new_key("jobs-ssrf")
            with sdk(live, secret) as client:
                job, _ = submit(client, extra_body={"webhook_url": receiver.url})
            deadline = time.monotonic() + 10
            while poll(live, secret, job["id"]).get("webhook", {}).get("status") == "pending":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert poll(live, secret, job["id"])["webhook"]["status"] == "failed"
    finally:
        receiver.close()
    assert receiver.received == []
