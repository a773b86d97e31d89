"""The invariant every robustness test checks: nothing a client sends makes the server answer 500
or log a traceback.

Hypothesis drives the real app (the session's uvicorn server on loopback) with generated requests.
Every answer must be below 500; every 4xx must carry OpenAI's error body (message/type/param/code,
a non-empty message; moderation_details only on a moderation block) and, for errors about a
parameter, a `param` that names a field the request sent (or the one it lacked). Errors logged by
the server (imagegate's "unhandled error", uvicorn's "Exception in ASGI application") fail the
test too, so failures after the response has started count.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import httpx
from hypothesis import HealthCheck, currently_in_test_context, event, settings

from tests.schemas import validate

# IMAGEGATE_FUZZ_EXAMPLES=2000 for a deeper run than CI's.
FUZZ = settings(
    max_examples=int(os.environ.get("IMAGEGATE_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ERROR_KEYS = {"message", "type", "param", "code"}
# Codes of errors about one request field: their `param` must name it.
PARAM_CODES = {
    "unknown_parameter",
    "missing_required_parameter",
    "invalid_value",
    "invalid_type",
    "invalid_image_file",
    "unsupported_file_mimetype",
    "model_not_found",
}


# --- the server's error log ---------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Collects ERROR records of imagegate and uvicorn (tracebacks of unhandled errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        found = [
            f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
            for r in self.records
        ]
        self.records.clear()
        return found


def assert_error_body(resp: httpx.Response) -> dict[str, Any]:
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    extra = set(err) - ERROR_KEYS
    allowed = {"moderation_details"} if err.get("code") == "moderation_blocked" else set()
    assert ERROR_KEYS <= set(err) and extra <= allowed, err
    assert isinstance(err["message"], str) and err["message"].strip(), err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["param"] is None or isinstance(err["param"], str), err  # (a key "" is named "")
    assert err["code"] is None or isinstance(err["code"], str), err
    validate("Error", err)
    return err  # type: ignore[no-any-return]


def _event(label: str) -> None:
    """The mix of answers, shown by pytest --hypothesis-show-statistics."""
    if currently_in_test_context():
        event(label)


def check(resp: httpx.Response, log: ErrorLog, fields: set[str] | None = None) -> dict[str, Any] | None:
    """The invariant: < 500, OpenAI's error body on 4xx, nothing logged as an error.

    `fields`: the parameter names the request sent (plus those it may be told it lacks);
    an error about a parameter must name one of them.
    """
    assert resp.status_code < 500, (resp.status_code, resp.text[:2000])
    assert not (logged := log.take()), logged
    if resp.status_code < 400:
        _event(f"{resp.status_code}")
        return None
    err = assert_error_body(resp)
    _event(f"{resp.status_code} {err['code']} {err['param']}")
    if fields is not None and err["code"] in PARAM_CODES:
        assert err["param"] is not None, err
        root = re.split(r"[\[.]", err["param"], maxsplit=1)[0]
        assert root in fields or err["param"] in fields, (err, sorted(fields))
    return err


def check_stream(resp: httpx.Response) -> None:
    """A streamed 200 ends with completed events and carries no error event."""
    if not resp.headers.get("content-type", "").startswith("text/event-stream"):
        assert "data" in resp.json()
        return
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events and all(e["type"] != "error" for e in events), events[-1:]
    assert events[-1]["type"].endswith(".completed")


def post_raw(api: httpx.Client, path: str, content: bytes, content_type: str) -> httpx.Response:
    return api.post(path, content=content, headers={"content-type": content_type})
