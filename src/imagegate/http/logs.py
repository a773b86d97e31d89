"""Logs: text (the default) or JSON, one object per line, and the line each images request leaves.

`IMAGEGATE_LOG_FORMAT=json` formats every record (imagegate's, uvicorn's) as one JSON object:
`ts`, `level`, `logger`, `message`, and a request line's fields. The request line (logger
`imagegate.access`, from each request's usage record as it ends) carries the request id, key id
(never the key), endpoint, model, engine, channel, status, error code, latency, images, cost and
attempts; the prompt only with `IMAGEGATE_LOG_PROMPTS=true`. It is written in JSON mode, or in text
mode when `IMAGEGATE_ACCESS_LOG=true`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from imagegate.storage.usage import UsageRecord

ACCESS = logging.getLogger("imagegate.access")
FIELDS = (
    "request_id", "key_id", "endpoint", "model", "engine", "channel", "status", "error_code",
    "latency_ms", "images", "cost_micros", "upstream_cost_micros", "attempts",
)  # fmt: skip


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(log_format: str) -> None:
    """The process's root handler: text lines as before, or JSON objects."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # httpx logs every upstream call at INFO ("HTTP Request: POST ..."): the usage records say more,
    # and the line cost about 0.07 ms a request (py-spy, bench/relay.py small bodies).
    logging.getLogger("httpx").setLevel(logging.WARNING)


class AccessLog:
    """flow/ports.py RequestObserver: one line per images request."""

    def __init__(self, prompts: bool) -> None:
        self.prompts = prompts

    def ended(self, record: UsageRecord, prompt: str | None) -> None:
        fields = {name: getattr(record, name) for name in FIELDS}
        if self.prompts:
            fields["prompt"] = prompt
        ACCESS.info(
            "%s %s %s %s %d ms",
            record.request_id,
            record.endpoint,
            record.model,
            record.status,
            record.latency_ms,
            extra={"fields": fields},
        )


class Observers:
    """Several observers as one."""

    def __init__(self, *observers: Any) -> None:
        self.observers = observers

    def ended(self, record: UsageRecord, prompt: str | None) -> None:
        for observer in self.observers:
            observer.ended(record, prompt)
