"""Streamed answers: a client that leaves early, and a failure after the stream started."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from tests.api.invariant import ErrorLog
from tests.conftest import LiveServer, make_settings


def test_client_leaving_a_stream_is_not_a_server_error(
    server: LiveServer, api_key: str, server_log: ErrorLog
) -> None:
    body = {
        "prompt": "a cat",
        "size": "256x256",
        "quality": "low",
        "stream": True,
        "partial_images": 3,
        "n": 4,
    }
    with httpx.stream(
        "POST",
        server.base_url + "/v1/images/generations",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {api_key}"},
    ) as resp:
        assert resp.status_code == 200
        next(resp.iter_bytes())  # the first event, then hang up
    time.sleep(0.5)
    assert not (logged := server_log.take()), logged


def test_failure_mid_stream_becomes_an_error_event(tmp_path: Path, server_log: ErrorLog) -> None:
    """A non-gateway error after the stream started: an `error` event, not a cut connection."""
    app = create_app(make_settings(tmp_path))
    with serve_in_thread(app) as base_url:
        stores = app.state.stores
        key = stores.keys.create("t", "internal", credit_micros=10**9)[1]

        def broken_put(*_args: object) -> None:
            raise OSError(28, "No space left on device")

        stores.images.put = broken_put
        body = {"prompt": "a cat", "size": "64x64", "quality": "low", "stream": True}
        resp = httpx.post(
            base_url + "/v1/images/generations",
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {key}"},
        )
        time.sleep(0.2)
    assert resp.status_code == 200
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error", events
    error = events[-1]["error"]
    assert error["type"] == "server_error" and error["message"] and "No space" not in error["message"]
    logged = server_log.take()
    assert len(logged) == 1 and "OSError" in logged[0], logged  # the operator sees it, once
