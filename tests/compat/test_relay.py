"""The relay: upstream channels behind the gateway, driven by the official openai SDK.

Every upstream is a real HTTP server on a loopback port (tests/fakes/upstream.py) that speaks
OpenAI's images protocol and fails on purpose. The tests assert what the upstream received (the
channel's key, never the client's; the mapped model, in JSON and inside multipart bodies; the
files byte for byte) and what the client got and paid.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from sqlalchemy import select

from imagegate.channels import Prober
from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from imagegate.storage.db import make_engine
from imagegate.storage.tables import channels, usage_records
from tests.conftest import LiveServer, make_settings, run_server
from tests.fakes.upstream import (
    OUT_OF_BALANCE,
    RATE_LIMITED,
    SERVER_ERROR,
    USAGE,
    Behaviour,
    FakeUpstream,
    always,
    error,
    every,
    noise_png,
    tiny_png,
)
from tests.imaging import mask_png, open_image, png

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


# --- Fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream(streams=True) as a, FakeUpstream(streams=True) as b:
        yield a, b


@pytest.fixture
def primary(fakes: tuple[FakeUpstream, FakeUpstream]) -> FakeUpstream:
    fakes[0].reset()
    fakes[0].image = None
    return fakes[0]


@pytest.fixture
def secondary(fakes: tuple[FakeUpstream, FakeUpstream]) -> FakeUpstream:
    fakes[1].reset()
    fakes[1].image = tiny_png(7, (5, 5))  # tells its answers from the primary's
    return fakes[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("relay"), admin_key=ADMIN, upstream_backoff_s=0.01,
        breaker_failure_threshold=3, breaker_cooldown_s=1.0, breaker_min_requests=1000,
        channel_probe_interval_s=0.2, channel_balance_probe_s=0.2, channel_refresh_s=0.3,
        local_fallback_models=["gpt-image-1-mini"],
    )
    with run_server(settings) as live:
        yield live


class Admin:
    """The /admin/channels API; every channel it adds is removed when the test ends."""

    def __init__(self, live: LiveServer) -> None:
        self.http = httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=30)

    def add(self, name: str, fake: FakeUpstream, api_key: str, models: tuple[str, ...] = ("gpt-image-1",),
            **fields: Any) -> dict[str, Any]:
        body = {"name": f"{name}-{uuid.uuid4().hex[:6]}", "base_url": fake.api_base, "api_key": api_key,
                "models": list(models), **fields}
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


@pytest.fixture
def admin(gateway: LiveServer) -> Iterator[Admin]:
    admin = Admin(gateway)
    yield admin
    admin.remove_all()
    admin.http.close()


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
    params = {"model": "gpt-image-1", "prompt": "a red fox in a blue forest", "quality": "medium",
              "size": "1024x1024", **params}
    raw = client.images.with_raw_response.generate(**params)
    return raw.parse(), raw.headers["x-request-id"]


def b64(data: str | None) -> bytes:
    assert data is not None
    return base64.b64decode(data)


# --- Faithful relaying -----------------------------------------------------------------------


def test_generation_carries_the_channel_key_the_mapped_model_and_is_billed_from_upstream_usage(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    channel = admin.add("gen", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-image-v2"},
                        prices=CHANNEL_PRICES)
    secret = gateway.new_key("relay-gen")
    with sdk(gateway, secret) as client:
        result, request_id = generate(client, n=2, background="opaque", output_format="png", moderation="low",
                                      user="user-42")
    [post] = primary.posts("/images/generations")
    assert post.bearer == PRIMARY_KEY and secret not in json.dumps(post.headers)
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {"model": "provider-image-v2", "prompt": "a red fox in a blue forest",
                           "quality": "medium", "size": "1024x1024", "n": 2, "background": "opaque",
                           "output_format": "png", "moderation": "low", "user": "user-42"}
    assert result.data and [b64(d.b64_json) for d in result.data] == [tiny_png(0), tiny_png(1)]
    for i, item in enumerate(result.data):  # stored here: our own signed URLs serve the bytes
        assert item.url and httpx.get(item.url).content == tiny_png(i)
    assert result.usage and result.usage.output_tokens == 272 and result.usage.input_tokens == 10
    assert spent_micros(gateway, secret) == UPSTREAM_COST
    rec = record(gateway, request_id)
    assert (rec["channel"], rec["engine"], rec["status"], rec["images"]) == (
        channel["name"], f"upstream:{channel['name']}", 200, 2)
    assert (rec["text_in"], rec["image_in"], rec["image_out"]) == (10, 0, 272)
    assert rec["cost_micros"] == UPSTREAM_COST and rec["attempts"] == 1
    assert rec["upstream_cost_micros"] == priced(USAGE, 4, 8, 30)  # the operator's cost, its own prices


def test_multipart_edit_relays_every_file_and_field_as_the_upstream_expects(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("edit", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-edit-v2"})
    first, second, mask = png(64, 64, seed=1), png(48, 32, seed=2), mask_png(64, 64, (0, 0, 32, 32))
    secret = gateway.new_key("relay-edit")
    with sdk(gateway, secret) as client:
        result = client.images.edit(
            model="gpt-image-1",
            image=[("first.png", first, "image/png"), ("second.png", second, "image/png")],
            mask=("mask.png", mask, "image/png"), prompt="add snow", n=1, quality="high", size="1024x1024",
            output_format="webp", output_compression=50, input_fidelity="high", stream=False,
        )
    [post] = primary.posts("/images/edits")
    assert post.is_multipart and post.bearer == PRIMARY_KEY
    assert post.fields() == {
        "model": ["provider-edit-v2"], "prompt": ["add snow"], "n": ["1"], "quality": ["high"],
        "size": ["1024x1024"], "output_format": ["webp"], "output_compression": ["50"],
        "input_fidelity": ["high"], "stream": ["false"],
    }
    assert [(f.name, f.filename, f.data, f.content_type) for f in post.files()] == [
        ("image[]", "first.png", first, "image/png"), ("image[]", "second.png", second, "image/png"),
        ("mask", "mask.png", mask, "image/png")]
    assert "content-length" in post.headers  # a sized body, not chunked: some providers refuse those
    assert result.data and b64(result.data[0].b64_json) == tiny_png(0)
    assert spent_micros(gateway, secret) == UPSTREAM_COST


def test_a_large_upload_is_streamed_from_its_temporary_file_byte_for_byte(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    """3 MB: over the 1 MiB that the multipart parser keeps in memory, so the relayed part is read
    from the spooled file on disk. Sent as application/octet-stream (as the SDK sends raw bytes);
    the upstream gets the media type sniffed from the bytes."""
    admin.add("large", primary, PRIMARY_KEY)
    image = noise_png(1000, 1000, seed=5)
    assert len(image) > 2_900_000
    secret = gateway.new_key("relay-large")
    resp = httpx.post(gateway.api_base + "/images/edits", headers={"Authorization": f"Bearer {secret}"},
                      data={"model": "gpt-image-1", "prompt": "sharpen"},
                      files={"image": ("holiday photo.png", image, "application/octet-stream")}, timeout=60)
    assert resp.status_code == 200, resp.text
    [post] = primary.posts("/images/edits")
    [part] = post.files()
    assert (part.name, part.filename, part.content_type) == ("image[]", "holiday photo.png", "image/png")
    assert part.data == image and int(post.headers["content-length"]) == len(post.body)


def test_a_relayed_edit_reads_only_the_image_header(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    """The pixels of a relayed upload are the provider's to decode: a PNG whose pixel data is
    cut short is sent on (a local engine refuses it with a 400, tests/compat/test_errors.py)."""
    admin.add("header-only", primary, PRIMARY_KEY)
    image = png(64, 64, seed=6)
    cut = image[: len(image) - 40]  # the header and size survive, the pixel data does not
    secret = gateway.new_key("relay-header")
    resp = httpx.post(gateway.api_base + "/images/edits", headers={"Authorization": f"Bearer {secret}"},
                      data={"model": "gpt-image-1", "prompt": "sharpen"},
                      files={"image": ("cut.png", cut, "image/png")}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert primary.posts("/images/edits")[0].files()[0].data == cut


def test_single_image_multipart_stream_becomes_image_array_with_true_and_decimal_strings(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("edit-stream", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-edit-v2"})
    image = png(40, 40, seed=3)
    secret = gateway.new_key("relay-edit-stream")
    form = {"model": "gpt-image-1", "prompt": "make it night", "stream": "true", "partial_images": "2",
            "quality": "medium"}
    with httpx.stream("POST", gateway.api_base + "/images/edits", data=form,
                      files={"image": ("one.png", image, "image/png")},
                      headers={"Authorization": f"Bearer {secret}"}, timeout=30) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    [post] = primary.posts("/images/edits")
    assert post.fields() == {"model": ["provider-edit-v2"], "prompt": ["make it night"], "stream": ["true"],
                             "partial_images": ["2"], "quality": ["medium"]}
    assert [(f.name, f.data) for f in post.files()] == [("image[]", image)]


def test_json_edit_is_relayed_as_json(gateway: LiveServer, admin: Admin, primary: FakeUpstream) -> None:
    admin.add("json-edit", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-edit-v2"})

    def data_url(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode()

    images = [{"image_url": data_url(png(32, 32, seed=4))}]
    mask = {"image_url": data_url(mask_png(32, 32, (0, 0, 16, 16)))}
    secret = gateway.new_key("relay-json-edit")
    resp = httpx.post(gateway.api_base + "/images/edits", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": "gpt-image-1", "prompt": "a hat", "images": images, "mask": mask,
                            "quality": "medium"}, timeout=30)
    assert resp.status_code == 200, resp.text
    [post] = primary.posts("/images/edits")
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {"model": "provider-edit-v2", "prompt": "a hat", "images": images, "mask": mask,
                           "quality": "medium"}


def test_upstream_url_results_are_fetched_and_outlive_the_upstream_url(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("urls", primary, PRIMARY_KEY)
    primary.default = ("url",)
    with sdk(gateway, gateway.new_key("relay-url")) as client:
        result, _ = generate(client)
    assert result.data and b64(result.data[0].b64_json) == tiny_png(0)
    [fetch] = [r for r in primary.received if r.method == "GET" and "/files/" in r.path]
    assert "authorization" not in fetch.headers  # the channel key is not sent to wherever the URL points
    primary.serve_files = False  # the provider's URL expires ...
    assert httpx.get(primary.base_url + fetch.path).status_code == 404
    ours = httpx.get(result.data[0].url or "")  # ... ours still serves the image
    assert ours.status_code == 200 and ours.content == tiny_png(0)


def test_upstream_without_usage_is_billed_by_the_gateways_token_math(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("no-usage", primary, PRIMARY_KEY)
    primary.usage = None
    secret = gateway.new_key("relay-no-usage")
    with sdk(gateway, secret) as client:
        result, _ = generate(client, n=2)
    assert result.usage and result.usage.output_tokens == 2 * 1056  # medium 1024x1024, two images
    expected = priced(result.usage.model_dump())
    assert expected > 0 and spent_micros(gateway, secret) == expected


# --- Failover --------------------------------------------------------------------------------

FAILURES: dict[str, Behaviour] = {
    "500": SERVER_ERROR,
    "503-no-body": ("status", 503, "upstream overloaded", {}),
    "429-retry-after": RATE_LIMITED,
    "timeout": ("sleep", 2.5),
    "slow-body": ("slow", 1.4, 2),
    "reset": ("reset",),
    "truncated": ("truncate",),
    "malformed-json": ("malformed",),
    "no-images": ("status", 200, {"created": 1, "data": []}, {}),
    "empty-stream": ("sse-stop", 0),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_failover_to_a_healthy_secondary(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream, failure: str
) -> None:
    admin.add("fail-primary", primary, PRIMARY_KEY, priority=10, timeout_s=1)
    backup = admin.add("fail-secondary", secondary, SECONDARY_KEY, prices=CHANNEL_PRICES)
    primary.push(FAILURES[failure])
    secret = gateway.new_key(f"failover-{failure}")
    started = time.monotonic()
    with sdk(gateway, secret) as client:
        if failure == "empty-stream":
            stream = client.images.generate(model="gpt-image-1", prompt="x", quality="medium", stream=True)
            events = list(stream)
            assert [e.type for e in events] == ["image_generation.completed"]
            assert b64(events[0].b64_json) == secondary.result_png(0)  # type: ignore[union-attr]
            request_id = None
        else:
            result, request_id = generate(client)
            assert result.data and b64(result.data[0].b64_json) == secondary.result_png(0)
    elapsed = time.monotonic() - started
    assert len(primary.posts()) == 1 and len(secondary.posts()) == 1
    assert secondary.posts()[0].bearer == SECONDARY_KEY
    assert spent_micros(gateway, secret) == UPSTREAM_COST
    if failure == "429-retry-after":  # the primary's Retry-After: 20 does not hold up the secondary
        assert elapsed < 2, elapsed
    if request_id is not None:
        rec = record(gateway, request_id)
        assert (rec["channel"], rec["attempts"], rec["status"]) == (backup["name"], 2, 200)
        assert rec["upstream_cost_micros"] == priced(USAGE, 4, 8, 30)


@pytest.mark.parametrize(("pause", "answers"), [(0.1, "primary"), (0.3, "secondary")])
def test_the_channel_timeout_bounds_the_whole_body_not_each_read(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream, pause: float,
    answers: str,
) -> None:
    """A body in 4 pieces `pause` apart, on a channel with a 1 s timeout: 0.4 s in all is relayed;
    1.2 s in all (never 1 s without a byte) is a timeout, and the secondary answers."""
    admin.add("slow", primary, PRIMARY_KEY, priority=10, timeout_s=1)
    admin.add("slow-backup", secondary, SECONDARY_KEY)
    primary.push(("slow", pause, 4))
    with sdk(gateway, gateway.new_key("slow")) as client:
        result, request_id = generate(client)
    fake = primary if answers == "primary" else secondary
    assert result.data and b64(result.data[0].b64_json) == fake.result_png(0)
    assert len(secondary.posts()) == (answers == "secondary")
    assert record(gateway, request_id)["attempts"] == (1 if answers == "primary" else 2)


def test_a_400_is_relayed_unchanged_without_failover(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    channel = admin.add("bad-request", primary, PRIMARY_KEY, priority=10)
    admin.add("bad-request-backup", secondary, SECONDARY_KEY)
    # Its message quotes the client's words ("balance"): still the client's fault, not the account's.
    refusal = error(400, "Invalid prompt: 'colour balance' is not supported by this model.",
                    "invalid_value", "invalid_request_error", "prompt")
    primary.push(refusal)
    secret = gateway.new_key("bad-request")
    body = {"model": "gpt-image-1", "prompt": "colour balance", "quality": "medium"}
    resp = httpx.post(gateway.api_base + "/images/generations", headers={"Authorization": f"Bearer {secret}"},
                      json=body, timeout=30)
    assert resp.status_code == 400 and resp.json() == refusal[2]
    primary.push(refusal)
    with sdk(gateway, secret) as client, pytest.raises(openai.BadRequestError) as info:
        generate(client, prompt="colour balance")
    assert info.value.body == refusal[2]["error"]
    assert len(primary.posts()) == 2 and secondary.posts() == []
    assert spent_micros(gateway, secret) == 0
    assert admin.channel(channel["id"])["enabled"] is True


def test_exhausted_routes_answer_503_naming_no_channel_secret(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore too: no key in any log line
    admin.add("down-a", primary, PRIMARY_KEY, priority=10)
    admin.add("down-b", secondary, SECONDARY_KEY)
    primary.valid_keys = {"sk-not-this-one"}  # 401, quoting the key it got (as OpenAI does)
    secondary.rule = always(SERVER_ERROR)
    secret = gateway.new_key("exhausted")
    resp = httpx.post(gateway.api_base + "/images/generations", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": "gpt-image-1", "prompt": "x", "quality": "medium"}, timeout=30)
    assert resp.status_code == 503, resp.text
    err = resp.json()["error"]
    assert err["code"] == "upstream_unavailable" and "3 attempts" in err["message"]
    with sdk(gateway, secret) as client, pytest.raises(openai.InternalServerError) as info:
        generate(client)
    assert info.value.status_code == 503
    texts = [resp.text, str(info.value.body), info.value.message, caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    for key in CHANNEL_KEYS:
        assert not any(key in text or key[-12:] in text for text in texts), key
    assert spent_micros(gateway, secret) == 0
    rec = record(gateway, resp.headers["x-request-id"])
    assert (rec["status"], rec["error_code"], rec["attempts"], rec["cost_micros"]) == (
        503, "upstream_unavailable", 3, 0)


def test_local_engine_is_the_fallback_when_every_channel_is_down(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("mini", primary, PRIMARY_KEY, models=("gpt-image-1-mini",), priority=5)
    secret = gateway.new_key("fallback")
    with sdk(gateway, secret) as client:
        result, _ = generate(client, model="gpt-image-1-mini")
        assert len(primary.posts()) == 1  # the channel first, while it works
        primary.rule = always(SERVER_ERROR)
        fallback, fallback_id = generate(client, model="gpt-image-1-mini", size="256x256", quality="low")
    assert result.data and b64(result.data[0].b64_json) == tiny_png(0)
    assert len(primary.posts()) == 2
    assert fallback.data and open_image(b64(fallback.data[0].b64_json)).size == (256, 256)
    rec = record(gateway, fallback_id)
    assert (rec["engine"], rec["channel"], rec["attempts"], rec["status"]) == ("placeholder", None, 2, 200)
    # gpt-image-1-mini's prices: $2 text in, $8 image out per 1M tokens (no image tokens in here).
    assert fallback.usage and fallback.usage.input_tokens_details.image_tokens == 0
    mini = priced(USAGE, 2, 0, 8) + priced(fallback.usage.model_dump(), 2, 0, 8)
    assert spent_micros(gateway, secret) == mini


# --- Disabling, probing, circuit breaking ----------------------------------------------------

REFUSALS: dict[str, Behaviour] = {
    "401": error(401, "Incorrect API key provided.", "invalid_api_key", "invalid_request_error"),
    "403": error(403, "You are not allowed to use this model.", "model_not_allowed", "invalid_request_error"),
    "402": error(402, "Payment required.", None, "invalid_request_error"),
    "429-insufficient-quota": OUT_OF_BALANCE,
    "400-insufficient-quota": error(400, "Your account has no credit left.", "insufficient_quota",
                                    "insufficient_quota"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_refused_key_disables_the_channel_until_a_probe_answers(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream, refusal: str
) -> None:
    """A rejected key is probed with GET /models. An account out of balance is probed with a real
    low-quality generation, since GET /models answers 200 for it (as here) while it cannot pay."""
    out_of_balance = refusal[:3] in ("402", "429", "400")
    channel = admin.add("refused", primary, PRIMARY_KEY, priority=10, model_map={"gpt-image-1": "up-v2"})
    admin.add("refused-backup", secondary, SECONDARY_KEY)
    primary.rule = always(REFUSALS[refusal])
    primary.valid_keys = {"sk-not-this-one"} if refusal == "401" else None
    primary.models_error = None if out_of_balance else REFUSALS[refusal]

    def served() -> list[Any]:  # the client's requests that reached the primary (not probes)
        return [r for r in primary.posts() if r.prompt != Prober.PROMPT]

    def probes() -> list[Any]:
        if out_of_balance:
            return [r for r in primary.posts() if r.prompt == Prober.PROMPT]
        return [r for r in primary.received if r.method == "GET" and r.path.endswith("/models")]

    with sdk(gateway, gateway.new_key(f"refused-{refusal}")) as client:
        result, _ = generate(client)  # answered by the secondary
        assert result.data and b64(result.data[0].b64_json) == secondary.result_png(0)
        view = admin.channel(channel["id"])
        assert view["enabled"] is False and view["disabled_reason"].startswith("auto: ")
        assert ("401" in view["disabled_reason"]) if refusal == "401" else True
        assert ("out of balance" in view["disabled_reason"]) is out_of_balance
        generate(client)
        assert len(served()) == 1  # disabled: not tried again
        wait_for(lambda: len(probes()) >= 2, what="two probes")  # refused: still disabled
        assert admin.channel(channel["id"])["enabled"] is False
        primary.rule, primary.valid_keys, primary.models_error = None, None, None
        wait_for(lambda: admin.channel(channel["id"])["enabled"], what="the probe to re-enable the channel")
        assert admin.channel(channel["id"])["disabled_reason"] is None
        wait_for(lambda: bool(generate(client) and len(served()) == 2), what="the primary to serve")
    assert all(r.bearer == PRIMARY_KEY for r in probes())
    if out_of_balance:
        assert probes()[0].json() == {"model": "up-v2", "prompt": Prober.PROMPT, "quality": "low",
                                      "size": "1024x1024", "n": 1}


def test_an_operator_disabled_channel_is_not_re_enabled_by_the_probe(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    channel = admin.add("manual", primary, PRIMARY_KEY)
    resp = admin.http.patch(f"/admin/channels/{channel['id']}", json={"enabled": False})
    assert resp.status_code == 200 and resp.json()["enabled"] is False
    time.sleep(0.6)
    assert admin.channel(channel["id"])["enabled"] is False
    with sdk(gateway, gateway.new_key("manual")) as client:
        with pytest.raises(openai.InternalServerError) as info:
            generate(client)
    assert info.value.status_code == 503 and primary.posts() == []


def test_the_circuit_opens_after_consecutive_failures_and_a_probe_closes_it(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    # The gateway: 3 consecutive failures open a circuit, for a 1 s cooldown.
    admin.add("breaker", primary, PRIMARY_KEY, priority=10)
    admin.add("breaker-backup", secondary, SECONDARY_KEY)
    primary.rule = always(SERVER_ERROR)
    with sdk(gateway, gateway.new_key("breaker")) as client:
        for _ in range(3):
            generate(client)
        assert (len(primary.posts()), len(secondary.posts())) == (3, 3)
        for _ in range(4):  # open: the primary is skipped, not even one attempt
            generate(client)
        assert (len(primary.posts()), len(secondary.posts())) == (3, 7)
        time.sleep(1.1)  # cooldown over: one probe, which fails and re-opens the circuit
        generate(client)
        generate(client)
        assert (len(primary.posts()), len(secondary.posts())) == (4, 9)
        primary.rule = None  # the provider recovers
        time.sleep(1.1)
        generate(client)  # the probe succeeds and closes the circuit
        assert (len(primary.posts()), len(secondary.posts())) == (5, 9)
        for _ in range(3):
            generate(client)
        assert (len(primary.posts()), len(secondary.posts())) == (8, 9)


def test_replicas_share_the_circuit_through_redis(
    tmp_path: Path, redis_url: str, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    common = {"admin_key": ADMIN, "upstream_backoff_s": 0.01, "redis_url": redis_url,
              "redis_prefix": f"imagegate-test-{uuid.uuid4().hex[:8]}:", "breaker_failure_threshold": 3,
              "breaker_cooldown_s": 1.0, "breaker_min_requests": 1000}
    name = f"shared-{uuid.uuid4().hex[:6]}"  # the circuit is named after the channel: the same on both
    primary.rule = always(SERVER_ERROR)
    with run_server(make_settings(tmp_path / "a", **common)) as a, \
            run_server(make_settings(tmp_path / "b", **common)) as b:
        clients = []
        for live in (a, b):
            admin = Admin(live)
            for channel in ({"name": name, "base_url": primary.api_base, "priority": 10},
                            {"name": name + "-backup", "base_url": secondary.api_base}):
                admin.http.post("/admin/channels", json={**channel, "api_key": PRIMARY_KEY,
                                                          "models": ["gpt-image-1"]}).raise_for_status()
            admin.http.close()
            clients.append(sdk(live, live.new_key("replica")))
        for _ in range(3):  # replica A opens the circuit ...
            generate(clients[0])
        for _ in range(3):  # ... and replica B does not send the primary anything either
            generate(clients[1])
        assert (len(primary.posts()), len(secondary.posts())) == (3, 6)
        primary.rule = None
        time.sleep(1.1)
        generate(clients[1])  # B's probe closes it for both
        generate(clients[0])
        assert (len(primary.posts()), len(secondary.posts())) == (5, 6)
        for client in clients:
            client.close()
    leftovers = redis.Redis.from_url(redis_url)  # the breaker's and the limiter's keys
    for key in leftovers.scan_iter(match=common["redis_prefix"] + "*"):
        leftovers.delete(key)
    leftovers.close()


# --- Streaming ---------------------------------------------------------------------------------


def test_a_stream_is_relayed_event_by_event(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("stream", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-image-v2"})
    primary.event_delay = 0.6
    secret = gateway.new_key("stream")
    arrivals: list[tuple[float, Any]] = []
    with sdk(gateway, secret) as client:
        started = time.monotonic()
        stream = client.images.generate(model="gpt-image-1", prompt="a city at night", stream=True,
                                        partial_images=2, quality="medium", size="1024x1024")
        for event in stream:
            arrivals.append((time.monotonic() - started, event))
    kinds = [e.type for _, e in arrivals]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    # The first partial image arrives while the upstream is still working on the rest (1.2 s).
    assert arrivals[0][0] < 0.5 and arrivals[-1][0] >= 1.1, [t for t, _ in arrivals]
    assert [b64(e.b64_json) for _, e in arrivals] == [primary.partial_png(0, 0), primary.partial_png(0, 1),
                                                      primary.result_png(0)]
    done = arrivals[-1][1]
    assert done.usage.output_tokens == 272 and done.usage.input_tokens == 10
    assert httpx.get(done.url).content == primary.result_png(0)
    [post] = primary.posts()
    assert post.json()["stream"] is True and post.json()["partial_images"] == 2
    assert post.json()["model"] == "provider-image-v2"
    assert spent_micros(gateway, secret) == UPSTREAM_COST


MID_STREAM: dict[str, tuple[Behaviour, int]] = {
    # behaviour, images delivered before it (of n=2 with one partial each: p, c, p, c)
    "reset-before-any-image": (("sse-cut", 1), 0),
    "error-event-after-one-image": (("sse-error", 3), 1),
    "reset-after-one-image": (("sse-cut", 2), 1),
    "stream-ends-after-one-image": (("sse-stop", 3), 1),
}


@pytest.mark.parametrize("case", list(MID_STREAM))
def test_a_mid_stream_failure_is_an_error_event_and_only_delivered_images_are_charged(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream, case: str
) -> None:
    admin.add("midstream", primary, PRIMARY_KEY, priority=10)
    admin.add("midstream-backup", secondary, SECONDARY_KEY)
    behaviour, delivered = MID_STREAM[case]
    primary.push(behaviour)
    secret = gateway.new_key(f"midstream-{case}")
    events: list[Any] = []
    with sdk(gateway, secret) as client:
        raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="two", stream=True, n=2,
                                                       partial_images=1, quality="medium")
        with pytest.raises(openai.APIError) as info:
            for event in raw.parse():
                events.append(event)
    assert "upstream" in info.value.message.lower()
    assert [e.type for e in events].count("image_generation.completed") == delivered
    assert events and events[0].type == "image_generation.partial_image"
    assert secondary.posts() == []  # images were on their way: no failover, no second bill
    assert spent_micros(gateway, secret) == delivered * UPSTREAM_COST
    rec = record(gateway, raw.headers["x-request-id"])
    assert (rec["status"], rec["images"], rec["cost_micros"]) == (502, delivered, delivered * UPSTREAM_COST)


def test_a_stream_refused_before_any_event_answers_with_the_http_status(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    admin.add("stream-refused", primary, PRIMARY_KEY, priority=10)
    admin.add("stream-refused-backup", secondary, SECONDARY_KEY)
    refusal = error(400, "Invalid value: 'partial_images' is not supported for this model.", "invalid_value",
                    "invalid_request_error", "partial_images")
    primary.push(refusal)
    secret = gateway.new_key("stream-refused")
    with sdk(gateway, secret) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.images.generate(model="gpt-image-1", prompt="x", stream=True, partial_images=2,
                                   quality="medium")
        assert bad.value.body == refusal[2]["error"]
        primary.rule, secondary.rule = always(SERVER_ERROR), always(SERVER_ERROR)
        with pytest.raises(openai.InternalServerError) as down:
            client.images.generate(model="gpt-image-1", prompt="x", stream=True, quality="medium")
    assert down.value.status_code == 503 and down.value.code == "upstream_unavailable"
    assert spent_micros(gateway, secret) == 0
    assert len(primary.posts()) == 3 and len(secondary.posts()) == 1


# --- Idempotency -------------------------------------------------------------------------------


def test_a_retry_after_an_upstream_timeout_is_charged_once(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    channel = admin.add("idem", primary, PRIMARY_KEY, timeout_s=1)
    primary.push(("sleep", 2.5))  # the first attempt times out; the gateway tries again
    secret = gateway.new_key("idem")
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    with sdk(gateway, secret) as client:
        first, request_id = generate(client, extra_headers=idem)
        again = client.images.with_raw_response.generate(
            model="gpt-image-1", prompt="a red fox in a blue forest", quality="medium", size="1024x1024",
            extra_headers=idem)
    assert again.headers["idempotent-replayed"] == "true"
    assert first.data and b64(again.parse().data[0].b64_json) == b64(first.data[0].b64_json)  # type: ignore[index]
    assert len(primary.posts()) == 2  # the timed-out attempt and the one that answered; no third
    assert spent_micros(gateway, secret) == UPSTREAM_COST
    rec = record(gateway, request_id)  # the operator sees the attempt it may have paid for twice
    assert (rec["channel"], rec["attempts"], rec["cost_micros"]) == (channel["name"], 2, UPSTREAM_COST)


def test_a_client_that_times_out_and_retries_is_charged_once(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("idem-client", primary, PRIMARY_KEY, timeout_s=1)
    primary.push(("sleep", 1.5))  # the upstream times out for the gateway, which tries again
    secret = gateway.new_key("idem-client")
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    with sdk(gateway, secret, timeout=0.7, max_retries=6) as client:  # the client gives up first
        result, _ = generate(client, extra_headers=idem)
    assert result.data and b64(result.data[0].b64_json) == tiny_png(0)
    assert spent_micros(gateway, secret) == UPSTREAM_COST


# --- Channel keys stay secret ------------------------------------------------------------------


def test_channel_keys_are_sealed_at_rest_and_never_shown(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    created = admin.add("secret", primary, PRIMARY_KEY, prices=CHANNEL_PRICES)
    assert created["api_key"] == "…" + PRIMARY_KEY[-4:]
    patched = admin.http.patch(f"/admin/channels/{created['id']}",
                               json={"api_key": SECONDARY_KEY, "weight": 3})
    assert patched.status_code == 200 and patched.json()["weight"] == 3
    texts = [json.dumps(created), patched.text, admin.http.get("/admin/channels").text,
             admin.http.get(f"/admin/channels/{created['id']}").text]
    for key in CHANNEL_KEYS:
        assert not any(key in text or key[-12:] in text for text in texts)
    engine = make_engine(gateway.settings.resolved_database_url)
    with engine.connect() as conn:
        sealed = conn.execute(select(channels.c.api_key_sealed)).scalars().all()
    engine.dispose()
    assert sealed and all(s.startswith("v1:") and SECONDARY_KEY not in s for s in sealed)
    # The files themselves, read by another process: closing a descriptor of the database file in this
    # one (where the gateway runs) would drop SQLite's locks.
    files = [str(p) for p in gateway.settings.data_dir.glob("imagegate.db*")]
    scan = subprocess.run(["grep", "-c", "-a", "-F", "-e", PRIMARY_KEY, "-e", SECONDARY_KEY, *files],
                          capture_output=True, text=True)
    assert scan.returncode == 1, scan.stdout  # no match in any file
    with sdk(gateway, gateway.new_key("secret")) as client:
        generate(client)
    assert primary.posts()[0].bearer == SECONDARY_KEY  # the new key, unsealed for the request only


def test_invalid_channels_are_refused_with_400(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    base = {"name": "bad", "base_url": primary.api_base, "api_key": PRIMARY_KEY, "models": ["gpt-image-1"]}
    for change in ({"prices": {"text_in_per_1m": -1, "image_in_per_1m": 0, "image_out_per_1m": 0}},
                   {"prices": {"per_1m": 5}}, {"base_url": "ftp://example.com"}, {"models": []},
                   {"weight": 0}, {"model_map": {"gpt-image-1": 5}}):
        resp = admin.http.post("/admin/channels", json={**base, **change})
        assert resp.status_code == 400, (change, resp.text)
        assert PRIMARY_KEY not in resp.text
    resp = admin.http.post("/admin/channels", json=base)
    assert resp.status_code == 201
    assert admin.http.post("/admin/channels", json=base).status_code == 409
    patch = admin.http.patch(f"/admin/channels/{resp.json()['id']}", json={"prices": {"per_1m": 5}})
    assert patch.status_code == 400, patch.text
    assert httpx.get(gateway.base_url + "/admin/channels").status_code == 401


def test_channels_managed_from_the_cli(gateway: LiveServer, primary: FakeUpstream, admin: Admin) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env["IMAGEGATE_DATA_DIR"] = str(gateway.settings.data_dir)
    name = f"cli-{uuid.uuid4().hex[:6]}"

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "imagegate.cli", "channels", *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def engine() -> str:
        resp = httpx.get(gateway.api_base + "/models/gpt-image-1",
                         headers={"Authorization": f"Bearer {secret}"})
        return str(resp.json()["engine"])

    secret = gateway.new_key("cli")
    out = cli("add", "--name", name, "--base-url", primary.api_base, "--api-key", PRIMARY_KEY,
              "--models", "gpt-image-1", "--map", "gpt-image-1=cli-upstream-model", "--priority", "3")
    assert name in out and PRIMARY_KEY not in out
    listed = cli("list", "--json")
    [row] = [c for c in json.loads(listed) if c["name"] == name]
    assert row["model_map"] == {"gpt-image-1": "cli-upstream-model"} and row["priority"] == 3
    assert PRIMARY_KEY not in listed and PRIMARY_KEY[-12:] not in listed
    assert PRIMARY_KEY[-12:] not in cli("list")
    wait_for(lambda: engine() == f"upstream:{name}", what="the gateway to load the new channel")
    with sdk(gateway, secret) as client:
        generate(client)
    [post] = primary.posts()
    assert post.bearer == PRIMARY_KEY and post.json()["model"] == "cli-upstream-model"
    cli("remove", name)
    wait_for(lambda: engine() == "placeholder", what="the gateway to drop the channel")


# --- 1,000 requests against a flaky primary ------------------------------------------------------


def test_a_thousand_requests_with_a_primary_failing_half_of_them(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, admin_key=ADMIN, upstream_backoff_s=0.0, breaker_failure_threshold=5,
        breaker_failure_rate=0.5, breaker_min_requests=20, breaker_window_s=10, breaker_cooldown_s=0.3,
    )
    app = create_app(settings)
    transitions: list[tuple[str, str]] = []  # (circuit, state after each recorded outcome)
    with FakeUpstream() as flaky, FakeUpstream() as healthy, serve_in_thread(app) as base_url:
        breaker = app.state.flow.router.breaker
        record_outcome = breaker.record

        async def spy(name: str, ok: bool, now: float) -> Any:
            state = await record_outcome(name, ok, now)
            transitions.append((name, state.state))
            return state

        breaker.record = spy
        flaky.rule = every(2, SERVER_ERROR)  # the 2nd, 4th, 6th ... request it receives fails
        healthy.image = tiny_png(7, (5, 5))
        live = LiveServer(base_url, settings, app.state.flow.clock)
        admin = Admin(live)
        p = admin.add("flaky", flaky, PRIMARY_KEY, priority=10)
        admin.add("healthy", healthy, SECONDARY_KEY)
        secret = live.new_key("thousand", credit_micros=10**10)

        with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0, timeout=60) as client:
            def one(i: int) -> bytes | None:
                try:
                    result = client.images.generate(model="gpt-image-1", prompt=f"request {i}",
                                                    size="1024x1024", quality="medium")
                except openai.APIError:
                    return None
                return b64(result.data[0].b64_json) if result.data else None

            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(one, range(1000)))
            elapsed = time.monotonic() - started
        admin.http.close()

    ok = [r for r in results if r is not None]
    assert len(ok) >= 999, f"{1000 - len(ok)} failed"
    failed_on_primary = sum(1 for r in flaky.posts() if r.number % 2 == 0)
    served_by_primary = len(flaky.posts()) - failed_on_primary
    # Every request was answered once: by the primary, or by the secondary after a failure or a skip.
    assert served_by_primary + len(healthy.posts()) == 1000 == len(ok)
    assert results.count(tiny_png(0)) == served_by_primary
    # The breaker opened on the failure rate (50% >= 50% over >= 20 requests), skipped the primary while
    # open, let probes through after each cooldown and closed again when one succeeded.
    states = [state for name, state in transitions if name == f"channel:{p['name']}"]
    pairs = list(zip(["closed", *states], states, strict=False))
    opened = sum(1 for before, after in pairs if before == "closed" and after == "open")
    closed = sum(1 for before, after in pairs if before != "closed" and after == "closed")
    assert opened >= 1 and closed >= 1, (opened, closed)
    skipped = 1000 - len(flaky.posts())
    assert skipped > 0  # requests sent straight to the secondary while the circuit was open
    assert elapsed < 60
