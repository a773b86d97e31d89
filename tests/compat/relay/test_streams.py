"""Server-sent event streams relayed event by event, and failures before and during them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from tests.compat.relay.harness import (
    IMAGE_OUT,
    PRIMARY_KEY,
    SECONDARY_KEY,
    TEXT_IN,
    UPSTREAM_COST,
    Admin,
    b64,
    record,
    sdk,
    spent_micros,
)
from tests.conftest import LiveServer
from tests.fakes.upstream import SERVER_ERROR, Behaviour, FakeUpstream, always, error


def test_a_stream_is_relayed_event_by_event(gateway: LiveServer, admin: Admin, primary: FakeUpstream) -> None:
    admin.add("stream", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-image-v2"})
    primary.event_delay = 0.6
    secret = gateway.new_key("stream")
    arrivals: list[tuple[float, Any]] = []
    with sdk(gateway, secret) as client:
        started = time.monotonic()
        stream = client.images.generate(
            model="gpt-image-1",
            prompt="a city at night",
            stream=True,
            partial_images=2,
            quality="medium",
            size="1024x1024",
        )
        for event in stream:
            arrivals.append((time.monotonic() - started, event))
    kinds = [e.type for _, e in arrivals]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    # The first partial image arrives while the upstream is still working on the rest (1.2 s).
    assert arrivals[0][0] < 0.5 and arrivals[-1][0] >= 1.1, [t for t, _ in arrivals]
    assert [b64(e.b64_json) for _, e in arrivals] == [
        primary.partial_png(0, 0),
        primary.partial_png(0, 1),
        primary.result_png(0),
    ]
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
    # Keep-alive comments reset a per-read timer: the channel's timeout bounds the wait for images.
    "keep-alives-only-after-one-image": (("sse-stall", 3), 1),
}


@pytest.mark.parametrize("case", list(MID_STREAM))
def test_a_mid_stream_failure_is_an_error_event_and_only_delivered_images_are_charged(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, secondary: FakeUpstream, case: str
) -> None:
    admin.add("midstream", primary, PRIMARY_KEY, priority=10, timeout_s=1)
    admin.add("midstream-backup", secondary, SECONDARY_KEY)
    behaviour, delivered = MID_STREAM[case]
    primary.push(behaviour)
    secret = gateway.new_key(f"midstream-{case}")
    events: list[Any] = []
    with sdk(gateway, secret) as client:
        raw = client.images.with_raw_response.generate(
            model="gpt-image-1", prompt="two", stream=True, n=2, partial_images=1, quality="medium"
        )
        with pytest.raises(openai.APIError) as info:
            for event in raw.parse():
                events.append(event)
    assert "upstream" in info.value.message.lower()
    if case.startswith("keep-alives"):  # the channel's 1 s, not the 30 s of keep-alives
        assert "timed out" in info.value.message
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
    refusal = error(
        400,
        "Invalid value: 'partial_images' is not supported for this model.",
        "invalid_value",
        "invalid_request_error",
        "partial_images",
    )
    primary.push(refusal)
    secret = gateway.new_key("stream-refused")
    with sdk(gateway, secret) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.images.generate(
                model="gpt-image-1", prompt="x", stream=True, partial_images=2, quality="medium"
            )
        assert bad.value.body == refusal[2]["error"]
        primary.rule, secondary.rule = always(SERVER_ERROR), always(SERVER_ERROR)
        with pytest.raises(openai.InternalServerError) as down:
            client.images.generate(model="gpt-image-1", prompt="x", stream=True, quality="medium")
    assert down.value.status_code == 503 and down.value.code == "upstream_unavailable"
    assert spent_micros(gateway, secret) == 0
    assert len(primary.posts()) == 3 and len(secondary.posts()) == 1


def test_a_client_that_hangs_up_after_partial_images_pays_for_them(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    """Hardening: a stream cut by the client after two partial images was charged nothing and its
    provider attempt was not even counted as maybe billed. The partial images it received are
    charged (+100 output tokens each, with the prompt's input), and the cut attempt is recorded."""
    admin.add("hang-up", primary, PRIMARY_KEY)
    primary.event_delay = 0.4
    secret = gateway.new_key("hang-up")
    body = {
        "model": "gpt-image-1",
        "prompt": "a lighthouse in a storm",
        "stream": True,
        "partial_images": 3,
        "quality": "medium",
        "size": "1024x1024",
    }
    partials = 0
    with httpx.stream(
        "POST",
        gateway.api_base + "/images/generations",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {secret}"},
    ) as resp:
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        for line in resp.iter_lines():
            if line.startswith("event: image_generation.partial_image"):
                partials += 1
                if partials == 2:
                    break  # hang up while the provider is still making the image
    rec = record(gateway, request_id)
    assert (rec["status"], rec["error_code"], rec["images"]) == (499, "client_disconnected", 0)
    assert rec["maybe_billed"] == 1 and rec["channel"].startswith("hang-up")
    assert rec["image_out"] == 2 * 100 and rec["text_in"] > 0
    expected = TEXT_IN * rec["text_in"] + IMAGE_OUT * 200
    assert rec["cost_micros"] == expected == spent_micros(gateway, secret)
