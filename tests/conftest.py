"""Shared fixtures: a real uvicorn server on a free loopback port, keys, SDK clients."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from imagegate.clock import Clock, ManualClock, SystemClock
from imagegate.config import Settings
from imagegate.http.app import create_app
from imagegate.http.serve import free_port, serve_in_thread
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

    def new_key(self, name: str = "test", tier: str = "internal", credit_micros: int = 10**9,
                **fields: object) -> str:
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


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    # The tests serve reference images from loopback servers, which production refuses (SSRF).
    overrides.setdefault("fetch_private_urls", True)
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
        pytest.skip(f"no PostgreSQL at {DEFAULT_POSTGRES_URL} "
                    "(set IMAGEGATE_TEST_POSTGRES_URL to require one)")
    finally:
        engine.dispose()
    return url or DEFAULT_POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh schema of the test database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(postgres_server_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_server_url else "?"
    try:
        yield f"{postgres_server_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage contract runs on SQLite (a file, WAL) and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'imagegate.db'}"
    return str(request.getfixturevalue("postgres_url"))


# --- Gateway processes: `imagegate serve` in a subprocess, as an operator runs it ------------
CLI = [sys.executable, "-m", "imagegate.cli"]


@dataclass
class Process:
    base_url: str
    proc: subprocess.Popen[str]
    env: dict[str, str]

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    def stop(self) -> str:
        """Terminate and return what it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.communicate(timeout=20)[0]


@contextlib.contextmanager
def spawn_server(data_dir: Path, **env: str) -> Iterator[Process]:
    """`imagegate serve` on a free port with IMAGEGATE_* settings from `env`; waits for /healthz."""
    port = free_port()
    full_env = {**os.environ, "IMAGEGATE_DATA_DIR": str(data_dir), "IMAGEGATE_PORT": str(port),
                "IMAGEGATE_CREATE_INITIAL_KEY": "false", **env}
    proc = subprocess.Popen(CLI + ["serve"], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    process = Process(f"http://127.0.0.1:{port}", proc, full_env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(process.base_url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("imagegate serve did not start:\n" + process.stop())
            time.sleep(0.1)
        yield process
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)  # also closes the pipe
