"""The performance monitor: records, stats, exports and the JSONL log."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from imagegate.client import CallRecord, Client, Monitor
from imagegate.client.monitor import p95, truncate_prompt
from tests.client.fake_upstream import COST_PER_CALL, FakeUpstream


def record(latency: float, success: bool = True, cost: int = 1000, **extra: object) -> CallRecord:
    return CallRecord(
        timestamp=0.0,
        kind="generate",
        model="gpt-image-1",
        prompt="p",
        latency_s=latency,
        cost_micro_usd=cost if success else 0,
        success=success,
        **extra,
    )  # type: ignore[arg-type]


def test_stats_aggregate_like_the_guide_plus_p95() -> None:
    monitor = Monitor()
    for i in range(1, 20):
        monitor.record(record(float(i)))
    monitor.record(record(100.0, success=False, error_code="server_error"))
    monitor.record(record(0.0, cache_hit=True, saved_micro_usd=1000, cost=0))
    stats = monitor.stats()
    assert stats.total_requests == 21 and stats.succeeded == 20 and stats.failed == 1
    assert stats.success_rate == pytest.approx(20 / 21)
    assert stats.mean_latency_s == pytest.approx((sum(range(1, 20)) + 100) / 20)  # hits excluded
    assert stats.p95_latency_s == 19.0
    assert stats.total_cost_usd == pytest.approx(19 * 0.001)
    assert stats.mean_cost_usd == pytest.approx(0.001)
    assert stats.cache_hits == 1 and stats.cache_savings_usd == pytest.approx(0.001)
    assert p95([]) == 0.0 and Monitor().stats().success_rate == 0.0


def test_prompts_are_truncated_to_50_characters() -> None:
    assert truncate_prompt("x" * 50) == "x" * 50
    assert truncate_prompt("y" * 80) == "y" * 50 + "..."


def test_every_call_is_recorded_with_errors(fake: FakeUpstream, fake_client: Client) -> None:
    fake_client.generate("z" * 70, quality="low")
    fake.push(
        (
            "status",
            400,
            {
                "error": {
                    "message": "bad",
                    "type": "invalid_request_error",
                    "param": "size",
                    "code": "invalid_value",
                }
            },
            {},
        )
    )
    with pytest.raises(Exception, match="bad"):
        fake_client.generate("broken", size="1x1")
    ok, failed = fake_client.monitor.records
    assert ok.success and ok.prompt == "z" * 50 + "..." and ok.params == {"quality": "low"}
    assert ok.cost_micro_usd == COST_PER_CALL and ok.images == 1 and ok.request_id
    assert not failed.success and failed.error_code == "invalid_value" and failed.status_code == 400


def test_exports_and_log_round_trip(fake: FakeUpstream, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "monitor.jsonl"
    with Client("sk", fake.api_base, monitor=Monitor(log)) as client:
        client.generate("one", quality="low")
        client.generate("two", n=2)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["images"] == 2
    loaded = Monitor.load(log)
    assert loaded.stats().total_requests == 2 and loaded.log_path is None
    rows = list(csv.DictReader(io.StringIO(loaded.to_csv(tmp_path / "calls.csv"))))
    assert [r["prompt"] for r in rows] == ["one", "two"]
    assert json.loads(rows[0]["params"]) == {"quality": "low"}
    assert (tmp_path / "calls.csv").exists()
    assert json.loads(loaded.to_json(tmp_path / "calls.json"))[1]["prompt"] == "two"
    log.write_text(log.read_text() + '{"torn": ')
    assert Monitor.load(log).stats().total_requests == 2
