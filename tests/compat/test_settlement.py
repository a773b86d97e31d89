"""How a request ends when ending it fails, and when its holds outlive their timeout (hardening):
the lease, the Idempotency-Key claim and the reservation are never left held."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from imagegate.clock import ManualClock
from imagegate.storage.db import make_engine
from imagegate.storage.tables import reservations, usage_records
from tests.conftest import LiveServer, make_settings, run_server

BODY = {"prompt": "tiny", "size": "64x64", "quality": "low", "output_format": "jpeg"}
REFUSE = """
CREATE FUNCTION refuse_usage() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'value too long for type character varying(50)'; END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse BEFORE INSERT ON usage_records FOR EACH ROW WHEN (NEW.status = 200)
EXECUTE FUNCTION refuse_usage();
"""


@pytest.fixture
def pg_server(tmp_path: Path, postgres_url: str) -> Iterator[LiveServer]:
    with run_server(make_settings(tmp_path, database_url=postgres_url)) as live:
        yield live


def test_a_final_transaction_that_fails_releases_the_lease_the_claim_and_the_credit(
    pg_server: LiveServer, postgres_url: str
) -> None:
    """PostgreSQL refuses the request's usage record (as it refused a 51-character engine name):
    each request gets a clear 503, is refunded, and leaves its concurrency slot and its
    Idempotency-Key free. Before, five such failures locked the key out for 15 minutes."""
    credit = 10_000_000
    secret = pg_server.new_key("locked-out", tier="free", credit_micros=credit, concurrency=1)
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": str(uuid.uuid4())}
    sql = make_engine(postgres_url)
    try:
        with sql.begin() as conn:
            conn.execute(text(REFUSE))
        for _ in range(5):
            resp = httpx.post(
                pg_server.api_base + "/images/generations", json=BODY, headers=headers, timeout=30
            )
            assert resp.status_code == 503, resp.text
            error = resp.json()["error"]
            assert error["code"] == "service_unavailable" and "not charged" in error["message"]
        with sql.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse ON usage_records"))
        resp = httpx.post(pg_server.api_base + "/images/generations", json=BODY, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text  # the same Idempotency-Key runs: its claim was let go
        usage = resp.json()["usage"]
        spent = 5 * usage["input_tokens"] + 40 * usage["output_tokens"]
        with sql.connect() as conn:
            rows = conn.execute(
                select(
                    usage_records.c.status, usage_records.c.error_code, usage_records.c.cost_micros
                ).order_by(usage_records.c.id)
            ).all()
            held = conn.execute(select(reservations.c.status)).scalars().all()
        assert [tuple(r) for r in rows] == [(503, "not_recorded", 0)] * 5 + [(200, None, spent)]
        assert sorted(held) == ["released"] * 5 + ["settled"]
        acct = httpx.get(pg_server.api_base + "/usage", headers=headers).json()
        assert round(acct["balance_usd"] * 1e6) == credit - spent
    finally:
        with sql.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS refuse ON usage_records"))
        sql.dispose()


def test_an_idempotency_key_whose_process_died_runs_again_once_its_reservation_is_swept(
    tmp_path: Path,
) -> None:
    """A claim left pending by a dead process answered 409 in_progress for 24 hours; it now expires
    with the reservation timeout (a running request renews both)."""
    clock = ManualClock(1_800_000_000.0)
    settings = make_settings(tmp_path, reservation_timeout_s=60)
    with run_server(settings, clock) as live:
        secret = live.new_key("crashed")
        repo = live.keys()
        key = repo.find(secret[:12])
        assert key is not None
        from imagegate.storage.idempotency import IdempotencyRepo

        # The first attempt's claim, as a process that died after claiming it left it.
        idem = str(uuid.uuid4())
        claims = IdempotencyRepo(repo.engine, clock, settings.idempotency_ttl_s)
        assert claims.begin(key.id, idem, "digest-of-another-attempt", 60).outcome == "new"
        repo.engine.dispose()
        headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": idem}
        url = live.api_base + "/images/generations"
        # The body differs from the dead attempt's, so a live claim would answer 409 either way.
        resp = httpx.post(url, json=BODY, headers=headers, timeout=30)
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "idempotency_key_reused"
        clock.advance(61)  # the reservation timeout has passed: the attempt is known dead
        resp = httpx.post(url, json=BODY, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        again = httpx.post(url, json=BODY, headers=headers, timeout=30)
        assert again.headers.get("idempotent-replayed") == "true"


def test_a_request_slower_than_the_reservation_timeout_keeps_its_hold(tmp_path: Path) -> None:
    """A request that outlived IMAGEGATE_RESERVATION_TIMEOUT_S was served free and lost its
    concurrency lease while running; a running request now renews both (every third of it)."""
    from tests.fakes.upstream import FakeUpstream

    settings = make_settings(tmp_path, reservation_timeout_s=1, sweep_interval_s=1, admin_key="admin-slow")
    with FakeUpstream() as upstream, run_server(settings) as live:
        upstream.delay_by_prompt[BODY["prompt"]] = 2.5  # the provider takes 2.5 reservation timeouts
        admin = {"Authorization": "Bearer admin-slow"}
        added = httpx.post(
            live.base_url + "/admin/channels",
            headers=admin,
            timeout=10,
            json={
                "name": "slow",
                "base_url": upstream.api_base,
                "api_key": "sk-slow-provider-key-000000",
                "models": ["gpt-image-1"],
            },
        )
        assert added.status_code == 201, added.text
        secret = live.new_key("slow", tier="free", concurrency=1)
        auth = {"Authorization": f"Bearer {secret}"}
        url = live.api_base + "/images/generations"
        with httpx.Client(timeout=30, headers=auth) as client:
            import threading

            result: dict[str, httpx.Response] = {}
            slow = threading.Thread(target=lambda: result.update(first=client.post(url, json=BODY)))
            slow.start()
            time.sleep(1.8)  # past the timeout: the sweeper ran several times meanwhile
            second = httpx.post(url, json=BODY, headers=auth, timeout=30)
            slow.join()
        assert second.status_code == 429 and "concurrent" in second.json()["error"]["message"]
        first = result["first"]
        assert first.status_code == 200, first.text
        spent = httpx.get(live.api_base + "/usage", headers=auth).json()["spent_usd"]
        assert spent > 0  # charged, not served free
