"""Every call recorded: the guide's PerformanceMonitor, with p95 latency and a log on disk.

`Monitor.record` keeps each `CallRecord` in memory and, given a `log_path`, appends it as a
JSON line, so `imagegate stats` (and `Monitor.load`) can read a history across processes.
Prompts are cut to 50 characters, as the guide does. Thread-safe (the batch runner records
from worker threads).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.client.pricing import micro_to_usd

PROMPT_CHARS = 50
LOG_NAME = "monitor.jsonl"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The SDK's local directory: IMAGEGATE_HOME, else ~/.imagegate (monitor log, cache)."""
    env = os.environ if environ is None else environ
    return Path(env.get("IMAGEGATE_HOME") or "~/.imagegate").expanduser()


def truncate_prompt(prompt: str, limit: int = PROMPT_CHARS) -> str:
    """The prompt cut to `limit` characters, with '...' when it was longer."""
    return prompt if len(prompt) <= limit else prompt[:limit] + "..."


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call: what was asked, how long it took, what it cost, how it ended."""

    timestamp: float
    kind: str
    model: str | None
    prompt: str
    params: Mapping[str, Any] = field(default_factory=dict)
    latency_s: float = 0.0
    cost_micro_usd: int = 0
    success: bool = True
    error_code: str | None = None
    status_code: int | None = None
    cache_hit: bool = False
    saved_micro_usd: int = 0
    images: int = 0
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the log line)."""
        return {**dataclasses.asdict(self), "params": dict(self.params)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CallRecord:
        """Parse a log line (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True, slots=True)
class Stats:
    """Aggregates over a monitor's records (latency over calls that reached the network)."""

    total_requests: int
    succeeded: int
    failed: int
    success_rate: float
    mean_latency_s: float
    p95_latency_s: float
    total_cost_usd: float
    mean_cost_usd: float
    cache_hits: int
    cache_savings_usd: float

    def as_dict(self) -> dict[str, Any]:
        """The stats as a plain dict."""
        return dataclasses.asdict(self)


def p95(values: list[float]) -> float:
    """The 95th percentile by the nearest-rank method (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def compute_stats(records: Iterable[CallRecord]) -> Stats:
    """Total requests, success rate, mean and p95 latency, total and mean cost, cache savings."""
    items = list(records)
    succeeded = [r for r in items if r.success]
    network = [r.latency_s for r in items if not r.cache_hit]
    total_cost = sum(r.cost_micro_usd for r in succeeded if not r.cache_hit)
    paid = [r for r in succeeded if not r.cache_hit]
    return Stats(
        total_requests=len(items),
        succeeded=len(succeeded),
        failed=len(items) - len(succeeded),
        success_rate=len(succeeded) / len(items) if items else 0.0,
        mean_latency_s=sum(network) / len(network) if network else 0.0,
        p95_latency_s=p95(network),
        total_cost_usd=micro_to_usd(total_cost),
        mean_cost_usd=micro_to_usd(total_cost) / len(paid) if paid else 0.0,
        cache_hits=sum(1 for r in items if r.cache_hit),
        cache_savings_usd=micro_to_usd(sum(r.saved_micro_usd for r in items)),
    )


class Monitor:
    """Collects CallRecords in memory and, optionally, in a JSONL log."""

    def __init__(self, log_path: str | os.PathLike[str] | None = None) -> None:
        self.log_path = Path(log_path).expanduser() if log_path is not None else None
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()
        self.log_errors = 0

    def record(self, record: CallRecord) -> None:
        """Keep `record` (and append it to the log, if there is one)."""
        with self._lock:
            self._records.append(record)
            if self.log_path is not None:
                try:
                    self.log_path.parent.mkdir(parents=True, exist_ok=True)
                    with self.log_path.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                except OSError:
                    self.log_errors += 1  # never fail a call because its log line could not be written

    @property
    def records(self) -> list[CallRecord]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._records)

    def stats(self) -> Stats:
        """Aggregates over every record."""
        return compute_stats(self.records)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The records as a JSON array (written to `path` too, if given)."""
        text = json.dumps([r.to_dict() for r in self.records], ensure_ascii=False, indent=2)
        if path is not None:
            Path(path).write_text(text, "utf-8")
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """The records as CSV, params as a JSON column (written to `path` too, if given)."""
        buffer = io.StringIO()
        names = [f.name for f in dataclasses.fields(CallRecord)]
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for record in self.records:
            row = record.to_dict()
            row["params"] = json.dumps(row["params"], ensure_ascii=False, sort_keys=True)
            writer.writerow(row)
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text, "utf-8")
        return text

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Monitor:
        """A monitor holding the records of a JSONL log (it does not append to that log)."""
        monitor = cls()
        source = Path(path).expanduser()
        if source.exists():
            for line in source.read_text("utf-8").splitlines():
                if line.strip():
                    try:
                        monitor._records.append(CallRecord.from_dict(json.loads(line)))
                    except (ValueError, TypeError):
                        continue  # a torn last line from a killed process
        return monitor
