"""Guessing the admin key: wrong keys from one address, on the admin API and the console's
sign-in alike, block that address (429 with Retry-After) for the rest of the window, right key
included; other addresses and the right key before the block are untouched."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from imagegate.clock import ManualClock
from imagegate.http.guard import counted_as
from tests.conftest import LiveServer, make_settings, run_server

ADMIN = "a-short-operator-key"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, admin_key=ADMIN, auth_max_failures=3, auth_failure_window_s=600)
    with run_server(settings, ManualClock()) as live:
        yield live


def _admin(live: LiveServer, key: str, address: str) -> httpx.Response:
    # uvicorn trusts X-Forwarded-For from loopback (its default --forwarded-allow-ips): each test
    # client plays a different address.
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}
    return httpx.get(live.base_url + "/admin/keys", headers=headers)


def _sign_in(live: LiveServer, key: str, address: str) -> httpx.Response:
    return httpx.post(
        live.base_url + "/console/api/session", json={"key": key}, headers={"X-Forwarded-For": address}
    )


def test_wrong_keys_block_the_address_for_the_window_right_key_included(guarded: LiveServer) -> None:
    for _ in range(20):  # the right key, however often, counts nothing
        assert _admin(guarded, ADMIN, "203.0.113.5").status_code == 200
    assert _admin(guarded, "guess-1", "203.0.113.5").status_code == 401
    assert _sign_in(guarded, "guess-2", "203.0.113.5").status_code == 401  # the console counts too
    assert _sign_in(guarded, "sk-ig-not-a-key", "203.0.113.5").status_code == 401  # an API key guess
    assert _admin(guarded, "guess-4", "203.0.113.5").status_code == 429  # past the limit
    blocked = _admin(guarded, ADMIN, "203.0.113.5")
    assert blocked.status_code == 429
    error = blocked.json()["error"]
    assert error["code"] == "too_many_failed_attempts" and error["type"] == "requests"
    assert blocked.headers["retry-after"] == "600"
    assert _sign_in(guarded, ADMIN, "203.0.113.5").status_code == 429
    assert _admin(guarded, ADMIN, "203.0.113.6").status_code == 200  # another address
    assert isinstance(guarded.clock, ManualClock)
    guarded.clock.advance(400)
    assert _admin(guarded, ADMIN, "203.0.113.5").headers["retry-after"] == "200"
    guarded.clock.advance(200)
    assert _admin(guarded, ADMIN, "203.0.113.5").status_code == 200
    assert _sign_in(guarded, ADMIN, "203.0.113.5").status_code == 200


def test_an_ipv6_subscriber_is_counted_by_its_slash_64(guarded: LiveServer) -> None:
    for host in ("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2:ffff::1"):
        assert _admin(guarded, "guess", host).status_code == 401
    assert _admin(guarded, ADMIN, "2001:db8:1:2::c").status_code == 429
    assert _admin(guarded, ADMIN, "2001:db8:1:3::a").status_code == 200
    assert counted_as("::ffff:192.0.2.1") == "192.0.2.1" and counted_as("192.0.2.1") == "192.0.2.1"


def test_zero_turns_the_count_off(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path, admin_key=ADMIN, auth_max_failures=0)) as live:
        for _ in range(15):
            assert _admin(live, "guess", "203.0.113.9").status_code == 401
        assert _admin(live, ADMIN, "203.0.113.9").status_code == 200


def test_a_burst_of_guesses_gets_exactly_the_limit_answered(guarded: LiveServer) -> None:
    """Every guess is counted before it is answered: 30 at once, 3 get their 401."""
    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda i: _admin(guarded, f"guess-{i}", "198.51.100.9").status_code, range(30)))
    assert sorted(codes) == [401] * 3 + [429] * 27


def test_the_machine_itself_is_never_blocked(guarded: LiveServer) -> None:
    """The loopback is exempt by default (IMAGEGATE_AUTH_EXEMPT): an operator locked out from
    outside can sign in on the server."""
    for _ in range(5):
        response = httpx.get(guarded.base_url + "/admin/keys", headers={"Authorization": "Bearer guess"})
        assert response.status_code == 401
    assert (
        httpx.get(guarded.base_url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"}).status_code
        == 200
    )
