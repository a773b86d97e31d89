"""Retries against a server that fails on purpose: which failures, how often, how long apart,
and one Idempotency-Key per logical request."""

from __future__ import annotations

import email.utils

import pytest

from imagegate.client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from imagegate.client._retry import backoff_delay, retry_after, retry_delay, should_retry
from tests.client.conftest import SleepRecorder
from tests.client.fake_upstream import FakeUpstream

POLICY = RetryPolicy()


def error(code: str | None, message: str = "nope", param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


# -- the rules, as pure functions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
    ],
)
def test_should_retry_by_status(status: int, expected: bool) -> None:
    assert should_retry(status, {}) is expected


def test_should_retry_overrides_and_quota() -> None:
    assert should_retry(400, {"x-should-retry": "true"})
    assert not should_retry(500, {"x-should-retry": "false"})
    assert not should_retry(429, {}, "insufficient_quota")
    assert should_retry(429, {}, "rate_limit_exceeded")


def test_backoff_bounds_follow_openai_python() -> None:
    for retry, (low, high) in enumerate(
        [(0.375, 0.5), (0.75, 1.0), (1.5, 2.0), (3.0, 4.0), (6.0, 8.0), (6.0, 8.0)]
    ):
        assert backoff_delay(retry, POLICY, lambda: 1.0) == pytest.approx(low)
        assert backoff_delay(retry, POLICY, lambda: 0.0) == pytest.approx(high)


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after({"retry-after-ms": "250"}, now) == 0.25
    assert retry_after({"retry-after": "3"}, now) == 3.0
    assert retry_after({"retry-after": "1.5"}, now) == 1.5
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after({"retry-after": date}, now) == pytest.approx(7, abs=1)
    assert retry_after({"retry-after": "soon"}, now) is None
    assert retry_after({}, now) is None


def test_retry_delay_caps_the_servers_wish_and_falls_back_to_backoff() -> None:
    assert retry_delay(0, {"retry-after": "5"}, POLICY, now=0, random=lambda: 0.0) == 5.0
    assert retry_delay(0, {"retry-after": "600"}, POLICY, now=0, random=lambda: 0.0) == 60.0
    assert retry_delay(1, {"retry-after": "0"}, POLICY, now=0, random=lambda: 0.0) == 1.0
    assert retry_delay(1, {}, POLICY, now=0, random=lambda: 0.0) == 1.0


# -- against the fake server -------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_that_long(
    fake: FakeUpstream, fake_client: Client, sleeps: SleepRecorder
) -> None:
    fake.push(("status", 429, error("rate_limit_exceeded"), {"retry-after": "2"}))
    result = fake_client.generate("a fox")
    assert len(result) == 1
    assert len(fake.posts()) == 2
    assert sleeps.retry_delays == [2.0]


def test_retry_after_ms_wins(fake: FakeUpstream, fake_client: Client, sleeps: SleepRecorder) -> None:
    fake.push(("status", 503, error(None), {"retry-after-ms": "150", "retry-after": "9"}))
    fake_client.generate("a fox")
    assert sleeps.retry_delays == [0.15]


def test_500s_back_off_then_give_up(fake: FakeUpstream, fake_client: Client, sleeps: SleepRecorder) -> None:
    fake.push(*[("status", 500, error("server_error"), {})] * 3)
    with pytest.raises(InternalServerError) as caught:
        fake_client.generate("a fox")
    assert caught.value.status_code == 500 and caught.value.code == "server_error"
    assert len(fake.posts()) == 3  # max_retries=2: three attempts
    # random() = 0.5 -> jitter factor 0.875: 0.5 * 0.875, then 1.0 * 0.875
    assert sleeps.retry_delays == [pytest.approx(0.4375), pytest.approx(0.875)]


def test_backoff_delays_stay_in_bounds_with_real_jitter(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    fake.push(*[("status", 502, error(None), {})] * 5)
    with Client("sk", fake.api_base, max_retries=4, sleep=sleeps) as client:
        with pytest.raises(InternalServerError):
            client.generate("x")
    bounds = [(0.375, 0.5), (0.75, 1.0), (1.5, 2.0), (3.0, 4.0)]
    assert len(sleeps.retry_delays) == 4
    for delay, (low, high) in zip(sleeps.retry_delays, bounds, strict=True):
        assert low <= delay <= high


def test_same_idempotency_key_on_every_retry(fake: FakeUpstream, fake_client: Client) -> None:
    fake.push(("status", 500, error(None), {}), ("reset",))
    fake_client.generate("first")
    fake_client.generate("second")
    posts = fake.posts()
    assert len(posts) == 4
    keys = [p.headers.get("idempotency-key") for p in posts]
    assert keys[0] and keys[0] == keys[1] == keys[2]
    assert keys[3] and keys[3] != keys[0]
    assert [p.headers["x-retry-count"] for p in posts] == ["0", "1", "2", "0"]
    assert posts[0].body == posts[2].body


def test_lost_answer_is_not_charged_twice(fake: FakeUpstream, fake_client: Client) -> None:
    """The server did the work but the answer was lost: the retry replays it, charged once."""
    fake.push(("charge-reset",))
    result = fake_client.generate("a fox")
    assert len(fake.posts()) == 2 and fake.charges == 1
    assert result.image.bytes


def test_connection_resets_are_retried_then_raised(
    fake: FakeUpstream, fake_client: Client, sleeps: SleepRecorder
) -> None:
    fake.push(("reset",), ("reset",), ("reset",))
    with pytest.raises(APIConnectionError) as caught:
        fake_client.generate("x")
    assert not isinstance(caught.value, APITimeoutError)
    assert len(fake.posts()) == 3 and len(sleeps.retry_delays) == 2


def test_409_conflict_is_retried(fake: FakeUpstream, fake_client: Client) -> None:
    fake.push(("status", 409, error("idempotency_in_progress"), {}))
    fake_client.generate("x")
    assert len(fake.posts()) == 2
    fake.push(*[("status", 409, error("idempotency_in_progress"), {})] * 3)
    with pytest.raises(ConflictError):
        fake_client.generate("y")


def test_timeouts_are_retried_then_raised(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    fake.push(("sleep", 1.0), ("sleep", 1.0))
    with Client("sk", fake.api_base, timeout=0.2, max_retries=1, sleep=sleeps) as client:
        with pytest.raises(APITimeoutError):
            client.generate("slow")
    assert len(fake.posts()) == 2


@pytest.mark.parametrize(
    ("status", "code", "exc_type"),
    [
        (400, "invalid_value", BadRequestError),
        (401, "invalid_api_key", AuthenticationError),
        (429, "insufficient_quota", InsufficientQuotaError),
    ],
)
def test_no_retry_on_client_errors(
    fake: FakeUpstream,
    fake_client: Client,
    sleeps: SleepRecorder,
    status: int,
    code: str,
    exc_type: type[Exception],
) -> None:
    fake.push(("status", status, error(code, "bad size", "size" if status == 400 else None), {}))
    with pytest.raises(exc_type) as caught:
        fake_client.generate("x")
    assert len(fake.posts()) == 1 and sleeps.retry_delays == []
    assert caught.value.code == code  # type: ignore[attr-defined]
    if status == 400:
        assert caught.value.param == "size"  # type: ignore[attr-defined]
    if status == 429:
        assert isinstance(caught.value, RateLimitError)  # still a 429 to `except RateLimitError`


def test_x_should_retry_overrides_the_status(fake: FakeUpstream, fake_client: Client) -> None:
    fake.push(("status", 400, error("flaky"), {"x-should-retry": "true"}))
    fake_client.generate("x")
    assert len(fake.posts()) == 2
    fake.push(("status", 503, error(None), {"x-should-retry": "false"}))
    with pytest.raises(InternalServerError):
        fake_client.generate("y")
    assert len(fake.posts()) == 3


def test_retry_after_http_date_uses_the_injected_clock(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 4, usegmt=True)
    fake.push(("status", 429, error("rate_limit_exceeded"), {"retry-after": date}))
    with Client("sk", fake.api_base, sleep=sleeps, clock=lambda: now) as client:
        client.generate("x")
    assert sleeps.retry_delays == [4.0]


def test_max_retries_zero_means_one_attempt(fake: FakeUpstream, sleeps: SleepRecorder) -> None:
    fake.push(("status", 500, error(None), {}))
    with Client("sk", fake.api_base, max_retries=0, sleep=sleeps) as client:
        with pytest.raises(InternalServerError):
            client.generate("x")
    assert len(fake.posts()) == 1


def test_a_wait_longer_than_the_bound_is_raised_at_once_saying_when(
    fake: FakeUpstream, sleeps: SleepRecorder
) -> None:
    """A per-day limit (Retry-After hours away): no sleeping for minutes first, as openai-python."""
    now = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
    fake.push(
        (
            "status",
            429,
            error("rate_limit_exceeded", "Rate limit reached for requests per day."),
            {"retry-after": str(5 * 3600 + 30)},
        )
    )
    with Client("sk", fake.api_base, sleep=sleeps, clock=lambda: now) as client:
        with pytest.raises(RateLimitError) as caught:
            client.generate("x")
    assert len(fake.posts()) == 1 and sleeps.delays == []
    assert caught.value.retry_after == 5 * 3600 + 30 and caught.value.retry_at == now + 5 * 3600 + 30
    assert str(caught.value).endswith(
        "Not retried: the server asks to wait 5h00m30s; try again after 2027-01-15 13:00:30 UTC."
    )
    fake.push(("status", 429, error("rate_limit_exceeded"), {"retry-after": "60"}))
    with Client("sk", fake.api_base, sleep=sleeps, clock=lambda: now) as client:
        client.generate("y")  # a minute is within the bound: waited, then retried
    assert sleeps.delays == [60.0]
