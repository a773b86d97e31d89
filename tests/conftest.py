"""Shared fixtures: a real uvicorn server on a free loopback port, keys, SDK clients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from imagegate.clock import Clock, ManualClock, SystemClock
from imagegate.config import Settings
from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from imagegate.storage.db import make_engine
from imagegate.storage.keys import KeyRepo


@dataclass
class LiveServer:
    base_url: str  # http://127.0.0.1:PORT
    settings: Settings
    clock: Clock

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    def keys(self) -> KeyRepo:
        return KeyRepo(make_engine(self.settings.resolved_database_url), self.clock)

    def new_key(self, name: str = "test") -> str:
        repo = self.keys()
        try:
            return repo.create(name)[1]
        finally:
            repo.engine.dispose()


@contextlib.contextmanager
def run_server(settings: Settings, clock: Clock | None = None) -> Iterator[LiveServer]:
    """Start create_app(settings) under uvicorn in a thread; stop it on exit."""
    clock = clock or SystemClock()
    with serve_in_thread(create_app(settings, clock=clock)) as base_url:
        yield LiveServer(base_url, settings, clock)


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, create_initial_key=False, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("data"), max_body_bytes=40 * 1024 * 1024)
    with run_server(settings) as live:
        yield live


@pytest.fixture(scope="session")
def clocked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose clock the test moves (URL expiry, retention)."""
    with run_server(make_settings(tmp_path_factory.mktemp("clocked")), ManualClock()) as live:
        yield live


@pytest.fixture(scope="session")
def api_key(server: LiveServer) -> str:
    return server.new_key("session")


@pytest.fixture
def client(server: LiveServer, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.api_base, api_key=api_key, max_retries=0) as c:
        yield c


@pytest.fixture
def http(server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as c:
        yield c


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
