"""An optional on-disk cache of image responses, keyed by what determines the pixels.

The key is the SHA-256 of a canonical JSON document (sorted keys, no spaces) of the call's
kind, model, prompt, parameters (minus `user`, `stream`, `response_format`, `partial_images`
and `safety_identifier`) and the SHA-256 of each input image's bytes (or its URL). A hit
returns the stored images without any HTTP request and counts the money it saved.

Off unless asked for: the same prompt normally should give a new image. Entries are JSON
files under `<directory>/<first two hex digits>/<key>.json`, written atomically, so several
processes may share a directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.client.pricing import micro_to_usd

CACHE_VERSION = 1


def cache_key(material: Mapping[str, Any]) -> str:
    """The canonical SHA-256 of `material` (a JSON-able mapping)."""
    canonical = json.dumps(
        {"v": CACHE_VERSION, **material}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored response: the body (every image as b64_json) and what the call cost."""

    body: Mapping[str, Any]
    cost_micro_usd: int
    stored_at: float


class ImageCache:
    """A directory of cached image responses, with hit/miss/savings counters."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.hits = 0
        self.misses = 0
        self.saved_micro_usd = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The entry for `key`, or None (a miss). Unreadable entries count as misses."""
        try:
            raw = json.loads(self._path(key).read_text("utf-8"))
            entry = CacheEntry(raw["body"], int(raw["cost_micro_usd"]), float(raw["stored_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
            self.saved_micro_usd += entry.cost_micro_usd
        return entry

    def put(self, key: str, body: Mapping[str, Any], cost_micro_usd: int) -> None:
        """Store a response body under `key` (atomically: a reader never sees half a file)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"body": body, "cost_micro_usd": cost_micro_usd, "stored_at": time.time()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        removed = 0
        for path in self.directory.glob("*/*.json"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    @property
    def saved_usd(self) -> float:
        """Dollars the hits of this cache object saved."""
        return micro_to_usd(self.saved_micro_usd)

    def stats(self) -> dict[str, Any]:
        """Hits, misses and savings counted by this cache object."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "saved_usd": self.saved_usd,
            "directory": str(self.directory),
        }
