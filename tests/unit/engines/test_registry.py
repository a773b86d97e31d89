"""The engine registry: engines by kind, third-party engines from the `imagegate.engines`
entry-point group only when allow-listed, routes that carry data (never a storage row)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imagegate.config import Settings
from imagegate.engines.registry import ChannelRoutes, build_registry
from imagegate.engines.upstream import UpstreamConfig
from imagegate.errors import ModelNotFound
from imagegate.pricing import ModelPrice

PLUGIN = """
from imagegate.engines.base import Capabilities


class TinyEngine:
    name = "tiny-plugin"
    capabilities = Capabilities(sizes=("512x512",), formats=("png",), alpha=False, max_n=1, masks=False)

    def __init__(self, settings):
        self.models = settings.models

    def describe(self):
        return "a third-party test engine"

    async def run(self, job):
        yield None


def factory(settings):
    return TinyEngine(settings)
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package installed the way pip leaves one: a module and a dist-info with entry points."""
    site = tmp_path / "site"
    (site / "imagegate_tiny_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "imagegate_tiny_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: imagegate-tiny-plugin\nVersion: 0.1\n"
    )
    (site / "imagegate_tiny_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[imagegate.engines]\ntiny = imagegate_tiny_plugin:factory\n"
    )
    (site / "imagegate_tiny_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "imagegate_tiny_plugin", raising=False)
    return "imagegate_tiny_plugin"


def test_an_allowed_plugin_serves_its_models(installed: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, engine_plugins=["tiny"], local_engines={"tiny": ["tiny-model"]})
    [route] = build_registry(settings).routes_for("tiny-model")
    assert route.engine.name == "tiny-plugin" and route.channel is None
    assert route.capabilities.sizes == ("512x512",) and route.capabilities.max_n == 1


def test_a_plugin_not_allowed_is_never_imported(installed: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, local_engines={"tiny": ["tiny-model"]})
    registry = build_registry(settings)
    assert installed not in sys.modules
    with pytest.raises(ModelNotFound):
        registry.routes_for("tiny-model")


def test_channel_routes_carry_names_and_prices_and_an_unusable_channel_serves_nothing(tmp_path: Path) -> None:
    price = ModelPrice(text_in_per_1m=1, image_in_per_1m=2, image_out_per_1m=3)
    good = ChannelRoutes(
        UpstreamConfig("good", "http://127.0.0.1:9/v1", "sk-good-0000000000"),
        ("gpt-image-1",),
        priority=5,
        prices=price,
    )
    sealed = ChannelRoutes(
        UpstreamConfig("sealed", "http://127.0.0.1:9/v1", ""), ("gpt-image-1-mini",), usable=False
    )
    registry = build_registry(Settings(data_dir=tmp_path), [good, sealed], session=object())  # type: ignore[arg-type]
    [route] = registry.routes_for("gpt-image-1")
    assert (route.channel, route.prices, route.breaker_name, route.engine.name) == (
        "good",
        price,
        "channel:good",
        "upstream:good",
    )
    assert registry.routes_for("gpt-image-1-mini") == []  # known, routed nowhere: 503, not placeholder art
    assert [r.engine.name for r in registry.routes_for("gpt-image-1.5")] == ["placeholder"]
