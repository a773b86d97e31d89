"""Batches: input order, per-job failures, resume, priority, and the adaptive rate gate."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from imagegate.client import AsyncClient, BatchProgress, Client, Job, JobResult
from imagegate.client.batch import RateGate, apply_priority, load_jobs, parse_duration
from imagegate.limits import Limits, LocalRateLimiter, go_duration
from tests.client.conftest import SleepRecorder
from tests.client.fake_upstream import COST_PER_CALL, USAGE, FakeUpstream, Received, tiny_png
from tests.fakes.upstream import Behaviour

BAD = (
    "status",
    400,
    {
        "error": {
            "message": "bad prompt",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": "invalid_value",
        }
    },
    {},
)


class FakeClock:
    """A clock that moves only when the (recorded) sleep is called."""

    def __init__(self, now: float = 1000.0, sleeps: SleepRecorder | None = None) -> None:
        self.now = now
        self.sleeps = sleeps
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:  # batch workers sleep on threads
            if self.sleeps is not None:
                self.sleeps(seconds)
            self.now += seconds


def posted_prompts(fake: FakeUpstream) -> list[str]:
    return [r.prompt for r in fake.posts()]


def test_results_keep_input_order_and_failures_stay_in_their_slot(
    fake: FakeUpstream, fake_client: Client
) -> None:
    prompts = [f"job {i}" for i in range(8)]
    for i, prompt in enumerate(prompts):
        fake.delay_by_prompt[prompt] = (8 - i) * 0.02  # early jobs finish last
    fake.behaviour_by_prompt["job 3"] = BAD
    seen: list[tuple[BatchProgress, JobResult]] = []
    outcome = fake_client.batch(prompts, concurrency=4, on_progress=lambda p, r: seen.append((p, r)))
    assert [r.job.prompt for r in outcome] == prompts
    assert [r.state for r in outcome] == ["done"] * 3 + ["failed"] + ["done"] * 4
    failed = outcome[3]
    assert failed.error_code == "invalid_value" and "bad prompt" in (failed.error or "")
    assert all(r.result is not None and r.result.prompt == r.job.prompt for r in outcome.succeeded)
    assert outcome.cost_usd == pytest.approx(7 * COST_PER_CALL / 1e6)
    last = seen[-1][0]
    assert (last.total, last.done, last.failed, last.eta_s) == (8, 7, 1, 0.0)
    assert [r.index for _, r in seen] != list(range(8))  # progress comes in completion order


def test_resume_runs_only_the_missing_jobs(fake: FakeUpstream, fake_client: Client, tmp_path: Path) -> None:
    jobs = [{"prompt": f"p{i}", "quality": "low"} for i in range(5)]
    results = tmp_path / "results.jsonl"
    first = fake_client.batch(jobs, concurrency=1, results_file=results, out_dir=tmp_path, max_jobs=2)
    assert [r.state for r in first] == ["done", "done", "pending", "pending", "pending"]
    assert posted_prompts(fake) == ["p0", "p1"]
    second = fake_client.batch(jobs, concurrency=2, results_file=results, out_dir=tmp_path)
    assert sorted(posted_prompts(fake)[2:]) == ["p2", "p3", "p4"]
    assert [r.resumed for r in second] == [True, True, False, False, False]
    assert all(r.ok for r in second) and second.cost_usd == pytest.approx(3 * COST_PER_CALL / 1e6)
    assert all(Path(f).exists() for r in second for f in r.files) and len(list(tmp_path.glob("*.png"))) == 5
    third = fake_client.batch(jobs, results_file=results)
    assert len(fake.posts()) == 5 and all(r.resumed for r in third)


def test_resume_after_an_interruption(fake: FakeUpstream, fake_client: Client, tmp_path: Path) -> None:
    prompts = [f"q{i}" for i in range(5)]
    results = tmp_path / "results.jsonl"

    def stop_after_two(progress: BatchProgress, _result: JobResult) -> None:
        if progress.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fake_client.batch(prompts, concurrency=1, results_file=results, on_progress=stop_after_two)
    done_before = len(fake.posts())
    assert done_before == 2  # no job starts after Ctrl-C (it used to race: 3, even 4 ran under load)
    rerun = fake_client.batch(prompts, concurrency=1, results_file=results)
    assert all(r.ok for r in rerun) and sum(r.resumed for r in rerun) == 2
    assert sorted(set(posted_prompts(fake))) == prompts
    assert fake.charges == 5  # an in-flight job replayed under its idempotency key is not charged twice


def test_failed_jobs_are_retried_on_resume_with_the_same_key(
    fake: FakeUpstream, fake_client: Client, tmp_path: Path
) -> None:
    results = tmp_path / "r.jsonl"
    fake.behaviour_by_prompt["flaky"] = BAD
    first = fake_client.batch(["fine", "flaky"], results_file=results, concurrency=1)
    assert [r.state for r in first] == ["done", "failed"]
    del fake.behaviour_by_prompt["flaky"]
    second = fake_client.batch(["fine", "flaky"], results_file=results)
    assert [r.state for r in second] == ["done", "done"] and second[1].resumed is False
    keys = [r.headers["idempotency-key"] for r in fake.posts() if r.prompt == "flaky"]
    assert len(keys) == 2 and keys[0] == keys[1]
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert lines[0]["type"] == "batch" and [line.get("ok") for line in lines[1:]] == [True, False, True]


def test_priority_rule_runs_hero_images_first_at_high_quality(
    fake: FakeUpstream, fake_client: Client
) -> None:
    jobs = ["banner", "hero image of the shoe", {"prompt": "main product shot", "quality": "medium"}, "icon"]
    outcome = fake_client.batch(jobs, concurrency=1, priority=True)
    assert posted_prompts(fake)[:2] == ["hero image of the shoe", "main product shot"]
    sent = {r.prompt: r.json().get("quality") for r in fake.posts()}
    assert sent == {
        "banner": "low",
        "hero image of the shoe": "high",
        "main product shot": "medium",
        "icon": "low",
    }
    assert [r.job.prompt for r in outcome][0] == "banner"
    assert apply_priority(Job("Main Product on white")).params["quality"] == "high"


def test_unreadable_inputs_fail_only_their_job(
    fake: FakeUpstream, fake_client: Client, tmp_path: Path
) -> None:
    outcome = fake_client.batch([{"prompt": "edit", "images": [str(tmp_path / "missing.png")]}, "ok"])
    assert [r.state for r in outcome] == ["failed", "done"]
    assert outcome[0].error_code == "FileNotFoundError"


def test_rate_limit_spaces_requests(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    clock = FakeClock(sleeps=sleeps)
    with Client("sk", fake.api_base, sleep=clock.sleep, clock=clock) as client:
        client.batch(["a", "b", "c", "d"], concurrency=1, rate_limit=60)  # one a second, burst 1
    assert sleeps.delays == [0.0, 1.0, 1.0, 1.0]


def test_rate_gate_adapts_to_429_and_ratelimit_headers() -> None:
    clock = FakeClock()
    gate = RateGate(120, burst=2, clock=clock)  # 2 per second
    assert [gate.reserve(), gate.reserve(), gate.reserve()] == [0.0, 0.0, pytest.approx(0.5)]
    gate.observe(429, {"retry-after": "3"})
    assert gate.pause_left() == 3.0 and gate.rate == pytest.approx(1.0) and gate.throttled == 1
    clock.now += 3
    gate.observe(200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"})
    assert gate.pause_left() == 90.0 and gate.rate == pytest.approx(1.2)
    unlimited = RateGate(None, burst=1, clock=clock)
    assert unlimited.reserve() == 0.0
    unlimited.observe(429, {})
    assert unlimited.pause_left() == 1.0
    assert parse_duration("6m0s") == 360.0 and parse_duration("20ms") == 0.02
    assert parse_duration("1.5") == 1.5 and parse_duration("soon") is None


def test_a_429_pauses_the_following_jobs(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    fake.push(
        (
            "status",
            429,
            {
                "error": {
                    "message": "slow down",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            {"retry-after": "3"},
        )
    )
    clock = FakeClock(sleeps=sleeps)
    fake.answer_headers = {}
    with Client("sk", fake.api_base, sleep=clock.sleep, clock=clock) as client:
        outcome = client.batch(["a", "b"], concurrency=1)
    assert all(r.ok for r in outcome)
    # "a": the client waits 3 s and retries; the gate's pause has then passed, so "b" goes at once
    assert sleeps.delays == [0.0, 3.0, 0.0]
    fake.answer_headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
    with Client("sk", fake.api_base, sleep=clock.sleep, clock=clock) as client:
        client.batch(["c", "d"], concurrency=1)
    assert sleeps.delays[3:] == [0.0, 2.0]  # "d" waits for the window to reset


def test_load_jobs_from_jsonl_and_csv(tmp_path: Path) -> None:
    (tmp_path / "ref.png").write_bytes(b"x")
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(
        '{"prompt": "a", "size": "1200x630", "id": "one"}\n\n{"prompt": "b", "images": ["ref.png"]}\n'
    )
    jobs = load_jobs(jsonl)
    assert jobs[0] == Job("a", {"size": "1200x630"}, id="one")
    assert jobs[1].images == (str(tmp_path / "ref.png"),)
    table = tmp_path / "jobs.csv"
    table.write_text("prompt,n,quality,images\nhello,2,low,\nedit it,,,ref.png|https://x/y.png\n")
    rows = load_jobs(table)
    assert rows[0].params == {"n": 2, "quality": "low"}
    assert rows[1].images == (str(tmp_path / "ref.png"), "https://x/y.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_jobs(bad)


def test_async_batch(fake: FakeUpstream, async_fake_client: AsyncClient, tmp_path: Path) -> None:
    fake.delay_by_prompt["a0"] = 0.1
    fake.behaviour_by_prompt["a2"] = BAD

    async def main() -> list[str]:
        async with async_fake_client as client:
            first = await client.batch(
                ["a0", "a1", "a2", "a3"], concurrency=3, results_file=tmp_path / "r.jsonl", max_jobs=3
            )
            assert [r.job.prompt for r in first] == ["a0", "a1", "a2", "a3"]
            second = await client.batch(["a0", "a1", "a2", "a3"], results_file=tmp_path / "r.jsonl")
            return [r.state for r in first] + [r.state for r in second]

    states = asyncio.run(main())
    assert states == ["done", "done", "failed", "pending", "done", "done", "failed", "done"]


def test_live_batch_writes_every_size(live: Client, tmp_path: Path) -> None:
    jobs = [
        {"prompt": "wide", "size": "1200x630", "quality": "low", "id": "wide"},
        {"prompt": "tall", "size": "1080x1920", "quality": "low", "id": "tall", "output_format": "jpeg"},
    ]
    outcome = live.batch(jobs, out_dir=tmp_path, concurrency=2)
    assert [r.files for r in outcome] == [(str(tmp_path / "wide.png"),), (str(tmp_path / "tall.jpg"),)]
    assert outcome[1].result is not None and outcome[1].result.image.to_pil().size == (1080, 1920)


class ServerBucket:
    """imagegate's own in-process limiter behind a fake server, on the test's clock: a free key
    (20 requests and 20 images a minute, one more of each every 3 s), answering with imagegate's
    x-ratelimit-* headers and, when empty, a 429 with Retry-After."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.limiter = LocalRateLimiter()
        self.limits = Limits(rpm=20, ipm=20)
        self.refused = 0

    def __call__(self, _number: int, request: Received) -> Behaviour:
        n = int(request.params.get("n") or 1)
        decision = asyncio.run(self.limiter.acquire("free", self.limits, images=n, now=self.clock()))
        headers = {}
        for kind in ("requests", "images"):
            headers[f"x-ratelimit-limit-{kind}"] = str(getattr(decision, f"limit_{kind}"))
            headers[f"x-ratelimit-remaining-{kind}"] = str(getattr(decision, f"remaining_{kind}"))
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(getattr(decision, f"reset_{kind}_s") or 0.0)
        if decision.allowed:
            image = base64.b64encode(tiny_png()).decode()
            return ("status", 200, {"created": 1, "data": [{"b64_json": image}], "usage": USAGE}, headers)
        self.refused += 1
        headers["retry-after"] = str(max(1, math.ceil(decision.retry_after_s)))
        return (
            "status",
            429,
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            headers,
        )


def test_a_drained_bucket_waits_for_the_next_token_not_a_full_refill(fake: FakeUpstream) -> None:
    """24 jobs on a free key: 20 at once, then one every 3 s (12 s), not a minute for the refill."""
    clock = FakeClock()
    fake.rule = server = ServerBucket(clock)
    sleeps = SleepRecorder()
    clock.sleeps = sleeps
    with Client("sk", fake.api_base, sleep=clock.sleep, clock=clock) as client:
        outcome = client.batch([f"fox {i}" for i in range(24)], concurrency=1)
    assert all(r.ok for r in outcome) and server.refused == 0
    assert sleeps.delays[:20] == [0.0] * 20
    assert sleeps.delays[20:] == [pytest.approx(3.0)] * 4  # before: 60 s, the bucket's full refill


def test_concurrent_workers_take_the_next_tokens_in_turn(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    """Four workers: the four jobs after the burst queue for the next tokens (3, 6, 9, 12 s at most),
    none waits for the whole bucket, and none fails for lack of retries."""
    clock = FakeClock(sleeps=sleeps)
    fake.rule = ServerBucket(clock)
    with Client("sk", fake.api_base, sleep=clock.sleep, clock=clock) as client:
        outcome = client.batch([f"fox {i}" for i in range(24)], concurrency=4)
    assert all(r.ok for r in outcome), [r.error for r in outcome.failed]
    assert 0 < max(sleeps.delays) <= 12.0 + 1e-6  # before: 57 s and more


def test_a_per_day_limit_fails_the_jobs_at_once(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    body = {
        "error": {
            "message": "Rate limit reached for requests per day",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    fake.default = ("status", 429, body, {"retry-after": str(5 * 3600)})
    clock = FakeClock(sleeps=sleeps)
    with Client("sk", fake.api_base, sleep=clock.sleep, clock=clock) as client:
        outcome = client.batch(["a", "b", "c"], concurrency=1)
    assert [r.state for r in outcome] == ["failed"] * 3 and len(fake.posts()) == 3
    assert sleeps.delays == [0.0, 0.0, 0.0]  # no retries, and no one paused for five hours
    assert "try again after" in (outcome[0].error or "")
