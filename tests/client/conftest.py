"""Fixtures for the SDK tests: a failing-on-purpose fake upstream, recorded sleeps, clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imagegate.client import AsyncClient, Client
from tests.client.fake_upstream import FakeUpstream
from tests.conftest import LiveServer


class SleepRecorder:
    """An injected `sleep` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    @property
    def retry_delays(self) -> list[float]:
        return [d for d in self.delays if d > 0]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's keys, URLs or ~/.imagegate."""
    for name in ("IMAGEGATE_API_KEY", "IMAGEGATE_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMAGEGATE_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def fake_client(fake: FakeUpstream, sleeps: SleepRecorder) -> Iterator[Client]:
    """A client of the fake upstream whose backoff jitter is fixed (random() = 0.5)."""
    with Client("sk-test", fake.api_base, sleep=sleeps, random=lambda: 0.5, timeout=5) as client:
        yield client


@pytest.fixture
def async_fake_client(fake: FakeUpstream, sleeps: SleepRecorder) -> AsyncClient:
    return AsyncClient("sk-test", fake.api_base, sleep=sleeps.asleep, random=lambda: 0.5, timeout=5)


@pytest.fixture
def live(server: LiveServer, api_key: str) -> Iterator[Client]:
    """A client of the real imagegate server (placeholder engine) on loopback."""
    with Client(api_key, server.api_base) as client:
        yield client
