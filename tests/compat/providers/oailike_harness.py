"""What the Azure, Seedream and xAI suites share.

The gateway and the /admin/channels client are the relay suite's fixtures (tests/compat/relay),
registered here under their own names: a test module imports `gateway_fixture` and `admin_fixture`
(so that its `gateway` and `admin` parameters do not shadow an import) and gets one gateway of its
own, configured as the relay suite's. The helpers below read what a response says about itself.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Mapping
from typing import Any

import openai
import pytest
from PIL import Image

from tests.compat.relay import conftest as relay
from tests.compat.relay.harness import Admin, b64, record
from tests.conftest import LiveServer

gateway_fixture = pytest.fixture(scope="module", name="gateway")(inspect.unwrap(relay.gateway))
admin_fixture = pytest.fixture(name="admin")(inspect.unwrap(relay.admin))

# The guide's sizes, which every provider must return exact.
GUIDE_SIZES = ("1080x1080", "1080x1920", "1200x630", "1200x675", "1200x627")
PROMPT = "a red fox in a blue forest"


def generate_raw(client: openai.OpenAI, model: str, **params: Any) -> tuple[Any, Mapping[str, str]]:
    """A generation through the SDK: the result and the response's headers."""
    raw = client.images.with_raw_response.generate(model=model, prompt=PROMPT, **params)
    return raw.parse(), raw.headers


def opened(data: str | None) -> Image.Image:
    image = Image.open(io.BytesIO(b64(data)))
    image.load()
    return image


def upstream_cost(live: LiveServer, headers: Mapping[str, str]) -> int | None:
    """What the request's usage record says the channel cost the operator (micro-dollars)."""
    return record(live, headers["x-request-id"])["upstream_cost_micros"]  # type: ignore[no-any-return]


def channel_error(admin: Admin, channel: dict[str, Any]) -> str | None:
    """The reason the gateway disabled a channel (None while it is enabled)."""
    return admin.channel(channel["id"])["disabled_reason"]  # type: ignore[no-any-return]
