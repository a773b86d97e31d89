"""Retries under one idempotency key are charged once."""

from __future__ import annotations

import uuid

from tests.compat.relay.harness import (
    PRIMARY_KEY,
    UPSTREAM_COST,
    Admin,
    b64,
    generate,
    record,
    sdk,
    spent_micros,
)
from tests.conftest import LiveServer
from tests.fakes.upstream import FakeUpstream, tiny_png


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
            model="gpt-image-1",
            prompt="a red fox in a blue forest",
            quality="medium",
            size="1024x1024",
            extra_headers=idem,
        )
    assert again.headers["idempotent-replayed"] == "true"
    assert first.data and b64(again.parse().data[0].b64_json) == b64(first.data[0].b64_json)  # type: ignore[index]
    assert len(primary.posts()) == 2  # the timed-out attempt and the one that answered; no third
    assert spent_micros(gateway, secret) == UPSTREAM_COST
    rec = record(gateway, request_id)  # the operator sees the attempt it may have paid for twice
    assert (rec["channel"], rec["attempts"], rec["cost_micros"]) == (channel["name"], 2, UPSTREAM_COST)
    assert rec["maybe_billed"] == 1  # the timed-out attempt: sent, so perhaps charged by the provider
    totals = admin.http.get("/admin/usage", params={"key": str(rec["key_id"])}).json()["data"]
    assert [(t["requests"], t["maybe_billed"]) for t in totals] == [(1, 1)]


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
