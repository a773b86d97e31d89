"""Disabling refused channels, probing them back, circuit breaking, and replicas sharing a circuit
through Redis."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from imagegate.channels import Prober
from tests.compat.relay.harness import ADMIN, PRIMARY_KEY, SECONDARY_KEY, Admin, b64, generate, sdk, wait_for
from tests.conftest import LiveServer, make_settings, run_server
from tests.fakes.upstream import OUT_OF_BALANCE, SERVER_ERROR, Behaviour, FakeUpstream, always, error

REFUSALS: dict[str, Behaviour] = {
    "401": error(401, "Incorrect API key provided.", "invalid_api_key", "invalid_request_error"),
    "403": error(403, "You are not allowed to use this model.", "model_not_allowed", "invalid_request_error"),
    "402": error(402, "Payment required.", None, "invalid_request_error"),
    "429-insufficient-quota": OUT_OF_BALANCE,
    "400-insufficient-quota": error(
        400, "Your account has no credit left.", "insufficient_quota", "insufficient_quota"
    ),
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
        assert probes()[0].json() == {
            "model": "up-v2",
            "prompt": Prober.PROMPT,
            "quality": "low",
            "size": "1024x1024",
            "n": 1,
        }


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
    common = {
        "admin_key": ADMIN,
        "upstream_backoff_s": 0.01,
        "redis_url": redis_url,
        "redis_prefix": f"imagegate-test-{uuid.uuid4().hex[:8]}:",
        "breaker_failure_threshold": 3,
        "breaker_cooldown_s": 1.0,
        "breaker_min_requests": 1000,
    }
    name = f"shared-{uuid.uuid4().hex[:6]}"  # the circuit is named after the channel: the same on both
    primary.rule = always(SERVER_ERROR)
    with (
        run_server(make_settings(tmp_path / "a", **common)) as a,
        run_server(make_settings(tmp_path / "b", **common)) as b,
    ):
        clients = []
        for live in (a, b):
            admin = Admin(live)
            for channel in (
                {"name": name, "base_url": primary.api_base, "priority": 10},
                {"name": name + "-backup", "base_url": secondary.api_base},
            ):
                admin.http.post(
                    "/admin/channels", json={**channel, "api_key": PRIMARY_KEY, "models": ["gpt-image-1"]}
                ).raise_for_status()
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
