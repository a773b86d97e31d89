"""What test_gemini.py and test_vertex.py share: a gateway, the fake Google services, the channel
credentials and helpers. The test modules import the fixtures from here (each module gets its own
gateway and fakes); the Admin client, sdk() and record() are the relay tests' (compat/relay/harness.py).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.compat.relay.harness import ADMIN, Admin
from tests.conftest import PASSTHROUGH, LiveServer, make_settings, run_server
from tests.fakes.gemini import FakeGemini
from tests.fakes.upstream import FakeUpstream
from tests.fakes.vertex import FakeVertex

GEMINI_KEY = "AIzaSyFakeGeminiKey-7c1d2e3f4a5b6c7d8e9f"
VERTEX_TOKEN = "ya29.fake-vertex-access-token-0a1b2c3d4e5f"
VERTEX_KEY = "AQ.fake-vertex-express-key-9f8e7d6c5b4a"
OPENAI_KEY = "sk-upstream-openai-for-failover-3e4f5a6b"
GUIDE_SIZES = ("1080x1080", "1080x1920", "1200x630", "1200x675", "1200x627")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("google"),
        **PASSTHROUGH,
        admin_key=ADMIN,
        upstream_backoff_s=0.01,
        breaker_failure_threshold=3,
        breaker_cooldown_s=1.0,
        breaker_min_requests=1000,
        channel_probe_interval_s=0.2,
        channel_balance_probe_s=0.2,
        channel_refresh_s=0.3,
    )
    with run_server(settings) as live:
        yield live


@pytest.fixture
def admin(gateway: LiveServer) -> Iterator[Admin]:
    admin = Admin(gateway)
    yield admin
    admin.remove_all()
    admin.http.close()


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini(valid_keys={GEMINI_KEY}) as fake:
        yield fake


@pytest.fixture
def gemini(gemini_server: FakeGemini) -> FakeGemini:
    gemini_server.reset()
    gemini_server.valid_keys = {GEMINI_KEY}
    return gemini_server


@pytest.fixture(scope="module")
def vertex_server() -> Iterator[FakeVertex]:
    with FakeVertex(tokens={VERTEX_TOKEN}, keys={VERTEX_KEY}) as fake:
        yield fake


@pytest.fixture
def vertex(vertex_server: FakeVertex) -> FakeVertex:
    vertex_server.reset()
    vertex_server.tokens, vertex_server.valid_keys = {VERTEX_TOKEN}, {VERTEX_KEY}
    return vertex_server


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def openai_upstream(openai_server: FakeUpstream) -> FakeUpstream:
    openai_server.reset()
    return openai_server


def opened(data: str | None) -> Image.Image:
    assert data is not None
    return Image.open(io.BytesIO(base64.b64decode(data)))


def generate_raw(client: openai.OpenAI, model: str, **params: Any) -> tuple[Any, httpx.Headers]:
    """A generation's parsed result and its response headers."""
    raw = client.images.with_raw_response.generate(model=model, prompt="a red fox in a blue forest", **params)
    return raw.parse(), raw.headers


def channel_usage(admin: Admin, name: str) -> dict[str, Any]:
    """The channel's row of /admin/usage?by=channel."""
    rows = admin.http.get("/admin/usage", params={"by": "channel"}).json()["data"]
    [row] = [r for r in rows if r["channel"] == name]
    return row  # type: ignore[no-any-return]
