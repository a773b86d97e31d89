"""1,000 requests against a primary failing half of them, on a gateway of their own."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai

from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from tests.compat.relay.harness import ADMIN, PRIMARY_KEY, SECONDARY_KEY, Admin, b64
from tests.conftest import PASSTHROUGH, LiveServer, make_settings
from tests.fakes.upstream import SERVER_ERROR, FakeUpstream, every, tiny_png


def test_a_thousand_requests_with_a_primary_failing_half_of_them(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        **PASSTHROUGH,  # it counts the primary's own bytes
        admin_key=ADMIN,
        upstream_backoff_s=0.0,
        breaker_failure_threshold=5,
        breaker_failure_rate=0.5,
        breaker_min_requests=20,
        breaker_window_s=10,
        breaker_cooldown_s=0.3,
    )
    app = create_app(settings)
    transitions: list[tuple[str, str]] = []  # (circuit, state after each recorded outcome)
    with FakeUpstream() as flaky, FakeUpstream() as healthy, serve_in_thread(app) as base_url:
        breaker = app.state.flow.router.breaker
        record_outcome = breaker.record

        async def spy(name: str, ok: bool, now: float) -> Any:
            state = await record_outcome(name, ok, now)
            transitions.append((name, state.state))
            return state

        breaker.record = spy
        flaky.rule = every(2, SERVER_ERROR)  # the 2nd, 4th, 6th ... request it receives fails
        healthy.image = tiny_png(7, (5, 5))
        live = LiveServer(base_url, settings, app.state.flow.clock)
        admin = Admin(live)
        p = admin.add("flaky", flaky, PRIMARY_KEY, priority=10)
        admin.add("healthy", healthy, SECONDARY_KEY)
        secret = live.new_key("thousand", credit_micros=10**10)

        with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0, timeout=60) as client:

            def one(i: int) -> bytes | None:
                try:
                    result = client.images.generate(
                        model="gpt-image-1", prompt=f"request {i}", size="1024x1024", quality="medium"
                    )
                except openai.APIError:
                    return None
                return b64(result.data[0].b64_json) if result.data else None

            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(one, range(1000)))
            elapsed = time.monotonic() - started
        admin.http.close()

    ok = [r for r in results if r is not None]
    assert len(ok) >= 999, f"{1000 - len(ok)} failed"
    failed_on_primary = sum(1 for r in flaky.posts() if r.number % 2 == 0)
    served_by_primary = len(flaky.posts()) - failed_on_primary
    # Every request was answered once: by the primary, or by the secondary after a failure or a skip.
    assert served_by_primary + len(healthy.posts()) == 1000 == len(ok)
    assert results.count(tiny_png(0)) == served_by_primary
    # The breaker opened on the failure rate (50% >= 50% over >= 20 requests), skipped the primary while
    # open, let probes through after each cooldown and closed again when one succeeded.
    states = [state for name, state in transitions if name == f"channel:{p['name']}"]
    pairs = list(zip(["closed", *states], states, strict=False))
    opened = sum(1 for before, after in pairs if before == "closed" and after == "open")
    closed = sum(1 for before, after in pairs if before != "closed" and after == "closed")
    assert opened >= 1 and closed >= 1, (opened, closed)
    skipped = 1000 - len(flaky.posts())
    assert skipped > 0  # requests sent straight to the secondary while the circuit was open
    assert elapsed < 60
