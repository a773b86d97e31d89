"""The files a batch keeps: the results file (one JSON line per finished job) and, for a batch
run as asynchronous jobs, the jobs file (the server's job for each batch job)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

JOBS_FILE_NAME = ".imagegate-batch-jobs.json"


class ResultsFile:
    """A JSONL file: a header line with the batch id, then one line per finished job."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        """(batch id, the last record of every job id) read from the file, if it exists."""
        batch_id: str | None = None
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return None, records
        for line in self.path.read_text("utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill
            if not isinstance(record, dict):
                continue
            if record.get("type") == "batch":
                batch_id = batch_id or str(record.get("batch_id"))
            elif "id" in record:
                records[str(record["id"])] = record
        return batch_id, records

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one line (flushed at once, so a kill loses at most the line being written)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


class JobsFile:
    """An asynchronous batch's jobs: `{"batch_id", "jobs": {batch job id: {"job": the server's
    job id, "digest": the job's content, "attempt": n}}}`, replaced whole on every save (written
    to a temporary file, then renamed over it: a kill leaves the old file or the new one).

    Each save writes the file at once while writing it is quick. A file of some thousands of
    jobs takes tens of milliseconds to write, and writing it after each of N submissions costs
    N^2/2 entries: then it is written at most once a second, and by `flush()` at the end of the
    submissions (a submission a kill leaves out is found again by its Idempotency-Key).
    """

    SLOW_WRITE_S = 0.02
    SLOW_EVERY_S = 1.0

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self._pending: tuple[str, Mapping[str, Mapping[str, Any]]] | None = None
        self._written_at = -math.inf
        self._every = 0.0

    def load(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        """(batch id, jobs) from the file; (None, {}) when there is none (or it is unreadable)."""
        if self.path is None or not self.path.exists():
            return None, {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except ValueError:
            return None, {}
        found = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(found, dict):
            return None, {}
        batch_id = data.get("batch_id")
        entries = {str(k): dict(v) for k, v in found.items() if isinstance(v, dict)}
        return (str(batch_id) if batch_id else None), entries

    def save(self, batch_id: str, entries: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the file with these jobs, now or (a slow file) within a second."""
        if self.path is None:
            return
        self._pending = (batch_id, entries)
        if time.monotonic() - self._written_at >= self._every:
            self.flush()

    def flush(self) -> None:
        """Write what the last save left unwritten."""
        if self.path is None or self._pending is None:
            return
        batch_id, entries = self._pending
        started = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        text = json.dumps({"batch_id": batch_id, "jobs": entries}, separators=(",", ":"))
        temporary.write_text(text, "utf-8")
        os.replace(temporary, self.path)
        self._pending = None
        self._written_at = time.monotonic()
        self._every = self.SLOW_EVERY_S if self._written_at - started > self.SLOW_WRITE_S else 0.0
