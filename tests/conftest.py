"""Shared fixtures: a real uvicorn server on a free loopback port, keys, SDK clients."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import Engine

from imagegate.clock import Clock, ManualClock, SystemClock
from imagegate.config import Settings
from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from imagegate.pricing import default_prices
from imagegate.storage.db import make_engine, migrate
from imagegate.storage.keys import KeyRepo
from tests.services import AWS_TEST_ENV, pg_schema, s3_bucket, spawn_moto


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

    def new_key(
        self, name: str = "test", tier: str = "internal", credit_micros: int = 10**9, **fields: object
    ) -> str:
        """A key on the server's database; by default unlimited and with $1000 of credit."""
        repo = self.keys()
        try:
            return repo.create(name, tier, credit_micros=credit_micros, **fields)[1]
        finally:
            repo.engine.dispose()


@contextlib.contextmanager
def run_server(settings: Settings, clock: Clock | None = None) -> Iterator[LiveServer]:
    """Start create_app(settings) under uvicorn in a thread; stop it on exit."""
    clock = clock or SystemClock()
    with serve_in_thread(create_app(settings, clock=clock)) as base_url:
        yield LiveServer(base_url, settings, clock)


LIST_PRICE = default_prices()["gpt-image-1"]


PASSTHROUGH = {"provenance": False}  # byte-for-byte relaying: no manifest embedded


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    # The tests serve reference images from loopback servers, which production refuses (SSRF).
    overrides.setdefault("fetch_private_urls", True)
    overrides.setdefault("fetch_private_provider_urls", True)  # the fake providers' image URLs, likewise
    # The money suites bill placeholder images at gpt-image-1's list price (the default is free).
    overrides.setdefault("placeholder_price", LIST_PRICE)
    # Images are signed as in production (C2PA manifests); the relay and provider suites, which
    # check that a provider's bytes arrive untouched, turn it off (PASSTHROUGH below).
    overrides.setdefault("provenance", True)
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


# --- Backing services: real Redis and PostgreSQL ------------------------------------------
# IMAGEGATE_TEST_REDIS_URL / IMAGEGATE_TEST_POSTGRES_URL (set by .ci/run) must answer;
# without them the local defaults are used and their tests skip, saying why, if absent.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = os.environ.get("IMAGEGATE_TEST_REDIS_URL")
    client = redis.Redis.from_url(url or DEFAULT_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if url:
            pytest.fail(f"IMAGEGATE_TEST_REDIS_URL does not answer: {exc}")
        pytest.skip(f"no Redis at {DEFAULT_REDIS_URL} (set IMAGEGATE_TEST_REDIS_URL to require one)")
    finally:
        client.close()
    return url or DEFAULT_REDIS_URL


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    url = os.environ.get("IMAGEGATE_TEST_POSTGRES_URL")
    engine = create_engine(url or DEFAULT_POSTGRES_URL, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        if url:
            pytest.fail(f"IMAGEGATE_TEST_POSTGRES_URL does not answer: {exc}")
        pytest.skip(
            f"no PostgreSQL at {DEFAULT_POSTGRES_URL} (set IMAGEGATE_TEST_POSTGRES_URL to require one)"
        )
    finally:
        engine.dispose()
    return url or DEFAULT_POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh schema of the test database for one test, dropped afterwards."""
    with pg_schema(postgres_server_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage contract runs on SQLite (a file, WAL) and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'imagegate.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each of SQLite and PostgreSQL."""
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


# --- S3: moto's server on loopback, a bucket per test --------------------------------------
@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3-speaking server (moto, in a subprocess) for the whole session."""
    with spawn_moto() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new bucket of its own, and the AWS credential variables every boto3 client here reads."""
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    with s3_bucket(s3_endpoint) as name:
        yield name
