"""Fixtures of the robustness tests: the server's error log and a client of the session server.

Both are per module, as they were when the tests were one file: a module's log starts empty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from tests.api.invariant import ErrorLog
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def server_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("imagegate", "uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def api(server: LiveServer, api_key: str, server_log: ErrorLog) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as c:
        yield c
