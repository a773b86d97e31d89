"""The relay: upstream channels behind the gateway, driven by the official openai SDK.

Every upstream is a real HTTP server on a loopback port (tests/fakes/upstream.py) that speaks
OpenAI's images protocol and fails on purpose. The tests assert what the upstream received (the
channel's key, never the client's; the mapped model, in JSON and inside multipart bodies; the
files byte for byte) and what the client got and paid.

The tests share one gateway and two fakes for the whole package (the fixtures below); each test adds
its channels through the `admin` fixture, which removes them afterwards. Helpers and constants live
in harness.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.relay.harness import ADMIN, Admin
from tests.conftest import PASSTHROUGH, LiveServer, make_settings, run_server
from tests.fakes.upstream import FakeUpstream, tiny_png


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("relay"),
        **PASSTHROUGH,
        admin_key=ADMIN,
        upstream_backoff_s=0.01,
        breaker_failure_threshold=3,
        breaker_cooldown_s=1.0,
        breaker_min_requests=1000,
        channel_probe_interval_s=0.2,
        channel_balance_probe_s=0.2,
        channel_refresh_s=0.3,
        local_fallback_models=["gpt-image-1-mini"],
    )
    with run_server(settings) as live:
        yield live


@pytest.fixture
def admin(gateway: LiveServer) -> Iterator[Admin]:
    admin = Admin(gateway)
    yield admin
    admin.remove_all()
    admin.http.close()
