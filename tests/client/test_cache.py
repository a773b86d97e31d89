"""The opt-in disk cache: canonical keys, hits that make no HTTP request, savings counted."""

from __future__ import annotations

from pathlib import Path

from imagegate.client import Client, ImageCache
from imagegate.client._inputs import load_input
from imagegate.client._requests import make_call
from imagegate.client.cache import cache_key
from tests.client.fake_upstream import COST_PER_CALL, FakeUpstream
from tests.imaging import png


def key_of(prompt: str, params: dict[str, object], images: tuple[bytes, ...] = ()) -> str:
    kind = "edit" if images else "generate"
    refs = tuple(load_input(data) for data in images)
    return cache_key(make_call(kind, prompt, params, "gpt-image-1", refs).cache_material())


def test_keys_are_canonical() -> None:
    a = key_of("fox", {"size": "1024x1024", "quality": "low"})
    assert a == key_of("fox", {"quality": "low", "size": "1024x1024", "user": "someone", "seed": None})
    assert len(a) == 64
    assert a != key_of("fox", {"size": "1024x1024", "quality": "high"})
    assert a != key_of("Fox", {"size": "1024x1024", "quality": "low"})
    assert key_of("e", {}, (png(8, 8, 1),)) != key_of("e", {}, (png(8, 8, 2),))
    assert key_of("e", {}, (png(8, 8, 1),)) == key_of("e", {}, (png(8, 8, 1),))


def test_second_identical_call_is_served_from_disk(fake: FakeUpstream, tmp_path: Path) -> None:
    with Client("sk", fake.api_base, cache=tmp_path / "cache") as client:
        first = client.generate("a cached fox", quality="low")
        second = client.generate("a cached fox", quality="low")
        other = client.generate("a cached fox", quality="high")
    assert len(fake.posts()) == 2  # the repeat made no HTTP request
    assert not first.cached and second.cached and not other.cached
    assert second.image.bytes == first.image.bytes and second.cost_usd == 0.0
    assert first.cost_micro_usd == COST_PER_CALL
    assert client.cache is not None
    assert client.cache.hits == 1 and client.cache.saved_micro_usd == COST_PER_CALL
    stats = client.monitor.stats()
    assert stats.cache_hits == 1 and stats.cache_savings_usd == COST_PER_CALL / 1e6
    assert stats.total_cost_usd == 2 * COST_PER_CALL / 1e6  # the hit cost nothing


def test_cache_persists_across_clients_and_is_off_by_default(fake: FakeUpstream, tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "shared")
    with Client("sk", fake.api_base, cache=cache) as client:
        client.edit(png(16, 16), "edit me", quality="low")
    with Client("sk", fake.api_base, cache=tmp_path / "shared") as client:
        assert client.edit(png(16, 16), "edit me", quality="low").cached
    assert len(fake.posts()) == 1
    with Client("sk", fake.api_base) as plain:
        assert plain.cache is None
        plain.generate("x")
        plain.generate("x")
    assert len(fake.posts()) == 3
    assert cache.clear() == 1


def test_corrupt_entries_are_misses(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    key = "ab" + "0" * 62
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / f"{key}.json").write_text("{not json")
    assert cache.get(key) is None and cache.misses == 1
    cache.put(key, {"data": []}, 5)
    entry = cache.get(key)
    assert entry is not None and entry.cost_micro_usd == 5 and cache.saved_usd == 5e-6
