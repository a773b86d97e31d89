"""The usage breakdowns the console charts (and GET /admin/usage?by=...): per model, failures by
status and code, and latency percentiles read from per-day buckets counted in SQL."""

from __future__ import annotations

from sqlalchemy import Engine

from imagegate.accounts import bucket_percentile
from imagegate.clock import ManualClock
from imagegate.storage.keys import KeyRepo
from imagegate.storage.usage import UsageRecord, UsageRepo

NOW = 1_800_000_000.0


def record(repo: UsageRepo, key_id: int, n: int, **fields: object) -> None:
    for i in range(n):
        repo.record(UsageRecord(request_id=f"req_{id(fields)}_{i}", key_id=key_id, created_at=NOW, **fields))  # type: ignore[arg-type]


def test_models_errors_and_latency_buckets(sqlite_engine: Engine) -> None:
    key, _ = KeyRepo(sqlite_engine, ManualClock(NOW)).create("k")
    repo = UsageRepo(sqlite_engine)
    record(
        repo,
        key.id,
        50,
        endpoint="generations",
        status=200,
        model="gpt-image-1",
        latency_ms=80,
        cost_micros=10,
    )
    record(
        repo,
        key.id,
        40,
        endpoint="generations",
        status=200,
        model="gpt-image-1",
        latency_ms=300,
        cost_micros=10,
    )
    record(repo, key.id, 9, endpoint="edits", status=200, model="tiny-sd", latency_ms=3_000, cost_micros=5)
    record(repo, key.id, 1, endpoint="edits", status=200, model="tiny-sd", latency_ms=500_000)
    record(
        repo, key.id, 3, endpoint="generations", status=400, model="gpt-image-1", error_code="invalid_value"
    )
    record(repo, key.id, 2, endpoint="generations", status=429, model=None, error_code="rate_limit_exceeded")

    models = {(r["model"], r["requests"], r["failed"], r["cost_micros"]) for r in repo.by_model(30, NOW)}
    assert models == {("gpt-image-1", 93, 3, 900), ("tiny-sd", 10, 0, 45), (None, 2, 2, 0)}
    errors = {(r["status"], r["error_code"], r["requests"]) for r in repo.errors(30, NOW)}
    assert errors == {(400, "invalid_value", 3), (429, "rate_limit_exceeded", 2)}

    buckets = [(r["le_ms"], r["requests"]) for r in repo.latency_histogram(30, NOW)]
    assert sorted(buckets, key=lambda b: b[0] or 10**9) == [(100, 50), (500, 40), (5_000, 9), (None, 1)]
    # The failed requests (latency 0) are not counted: only the 100 that succeeded.
    ordered = [(100, 50), (500, 40), (5_000, 9), (None, 1)]
    assert [bucket_percentile(ordered, 100, q) for q in (50, 90, 99, 100)] == [100, 500, 5_000, None]
    assert repo.by_model(30, NOW + 31 * 86_400) == []
