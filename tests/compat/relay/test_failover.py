"""Failover to a healthy secondary, channel timeouts, 400s relayed unchanged, exhausted routes and
the local fallback engine."""

from __future__ import annotations

import logging
import time

import httpx
import openai
import pytest

from tests.compat.relay.harness import (
    CHANNEL_KEYS,
    CHANNEL_PRICES,
    PRIMARY_KEY,
    SECONDARY_KEY,
    UPSTREAM_COST,
    Admin,
    b64,
    generate,
    priced,
    record,
    sdk,
    spent_micros,
)
from tests.conftest import LiveServer
from tests.fakes.upstream import (
    RATE_LIMITED,
    SERVER_ERROR,
    USAGE,
    Behaviour,
    FakeUpstream,
    always,
    error,
    tiny_png,
)
from tests.imaging import open_image

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
    "null-image": ("status", 200, {"created": 1, "data": [None]}, {}),
    "empty-stream": ("sse-stop", 0),
}


MAYBE_BILLED = {"timeout", "slow-body", "reset", "truncated", "malformed-json", "no-images", "null-image"}


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
        # An error status is not charged; an answer cut short or unreadable may have been.
        assert rec["maybe_billed"] == (failure in MAYBE_BILLED), rec


@pytest.mark.parametrize(("pause", "answers"), [(0.1, "primary"), (0.3, "secondary")])
def test_the_channel_timeout_bounds_the_whole_body_not_each_read(
    gateway: LiveServer,
    admin: Admin,
    primary: FakeUpstream,
    secondary: FakeUpstream,
    pause: float,
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
    refusal = error(
        400,
        "Invalid prompt: 'colour balance' is not supported by this model.",
        "invalid_value",
        "invalid_request_error",
        "prompt",
    )
    primary.push(refusal)
    secret = gateway.new_key("bad-request")
    body = {"model": "gpt-image-1", "prompt": "colour balance", "quality": "medium"}
    resp = httpx.post(
        gateway.api_base + "/images/generations",
        headers={"Authorization": f"Bearer {secret}"},
        json=body,
        timeout=30,
    )
    assert resp.status_code == 400 and resp.json() == refusal[2]
    primary.push(refusal)
    with sdk(gateway, secret) as client, pytest.raises(openai.BadRequestError) as info:
        generate(client, prompt="colour balance")
    assert info.value.body == refusal[2]["error"]
    assert len(primary.posts()) == 2 and secondary.posts() == []
    assert spent_micros(gateway, secret) == 0
    assert admin.channel(channel["id"])["enabled"] is True


def test_exhausted_routes_answer_503_naming_no_channel_secret(
    gateway: LiveServer,
    admin: Admin,
    primary: FakeUpstream,
    secondary: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore too: no key in any log line
    admin.add("down-a", primary, PRIMARY_KEY, priority=10)
    admin.add("down-b", secondary, SECONDARY_KEY)
    primary.valid_keys = {"sk-not-this-one"}  # 401, quoting the key it got (as OpenAI does)
    secondary.rule = always(SERVER_ERROR)
    secret = gateway.new_key("exhausted")
    resp = httpx.post(
        gateway.api_base + "/images/generations",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-image-1", "prompt": "x", "quality": "medium"},
        timeout=30,
    )
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
        503,
        "upstream_unavailable",
        3,
        0,
    )


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
