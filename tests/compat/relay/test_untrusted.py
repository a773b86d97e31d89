"""What comes back from a provider is untrusted input (hardening): the image URLs in its answers
go through the guards of a client's URLs, the bytes must be an image of the format asked for, and
a key it echoes never reaches the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat.relay.harness import ADMIN, PRIMARY_KEY, Admin
from tests.conftest import LiveServer, make_settings, run_server
from tests.fakes.upstream import FakeUpstream, error

BODY = {"model": "gpt-image-1", "prompt": "a lighthouse", "size": "1024x1024", "quality": "low"}


def post(live: LiveServer, secret: str) -> httpx.Response:
    return httpx.post(
        live.api_base + "/images/generations",
        json=BODY,
        timeout=30,
        headers={"Authorization": f"Bearer {secret}"},
    )


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveServer]:
    """A gateway with the production default: provider answer URLs on private networks refused."""
    settings = make_settings(
        tmp_path, admin_key=ADMIN, fetch_private_provider_urls=False, upstream_max_attempts=1
    )
    with run_server(settings) as live:
        yield live


def test_a_provider_url_on_the_gateways_own_network_is_never_fetched(
    guarded: LiveServer, primary: FakeUpstream
) -> None:
    admin = Admin(guarded)
    try:
        admin.add("url-answers", primary, PRIMARY_KEY)  # the operator's own base URL: loopback is fine
        primary.push(("url",))  # ... but its answer points into the gateway's network
        secret = guarded.new_key("guarded")
        resp = post(guarded, secret)
    finally:
        admin.remove_all()
        admin.http.close()
    assert resp.status_code in (502, 503), resp.text
    assert "does not fetch" in resp.json()["error"]["message"]
    assert [r for r in primary.received if "/files/" in r.path] == []  # no request was made
    assert (
        httpx.get(guarded.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}).json()[
            "spent_usd"
        ]
        == 0
    )


@pytest.mark.parametrize("data", [b"<html>not an image</html>", b"\xff\xd8\xff\xe0 a jpeg header"])
def test_bytes_that_are_not_the_promised_image_are_refused(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream, data: bytes
) -> None:
    admin.add("not-an-image", primary, PRIMARY_KEY)
    primary.push(*[("file", "fake.png", data)] * 3)  # each attempt (the failure is retryable)
    resp = post(gateway, gateway.new_key("not-an-image"))
    assert resp.status_code in (502, 503), resp.text
    assert "png image was asked for" in resp.json()["error"]["message"]


def test_a_key_the_provider_echoes_never_reaches_the_client(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("echo", primary, PRIMARY_KEY)
    primary.push(
        error(
            400,
            f"Incorrect API key provided: {PRIMARY_KEY}. Sent Authorization: Bearer {PRIMARY_KEY}",
            "invalid_value",
            "invalid_request_error",
            "prompt",
        )
    )
    resp = post(gateway, gateway.new_key("echo"))
    assert resp.status_code == 400
    text = resp.text
    assert PRIMARY_KEY not in text and PRIMARY_KEY[-12:] not in text and "[redacted]" in text
    assert resp.json()["error"]["param"] == "prompt"  # the rest of the provider's error is relayed
