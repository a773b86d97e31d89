"""The channels table on SQLite and PostgreSQL: keys sealed at rest, and the balance-probe claim
that lets replicas sharing a database spend one real request per interval between them."""

from __future__ import annotations

from sqlalchemy import Engine, select

from imagegate.clock import ManualClock
from imagegate.storage.channels import ChannelRepo
from imagegate.storage.secretbox import SecretBox
from imagegate.storage.tables import channels

KEY = "sk-provider-0123456789abcdef"


def test_keys_are_sealed_at_rest(engine: Engine) -> None:
    repo = ChannelRepo(engine, ManualClock(1000.0), SecretBox("00" * 32))
    channel = repo.add("a", "https://api.example.com/v1", KEY, ["gpt-image-1"])
    with engine.connect() as conn:
        stored = conn.execute(select(channels.c.api_key_sealed)).scalar_one()
    assert KEY not in stored and repo.get("a").api_key == KEY == channel.api_key  # type: ignore[union-attr]


def test_one_balance_probe_per_interval_over_all_replicas(engine: Engine) -> None:
    clock = ManualClock(1000.0)
    box = SecretBox("00" * 32)
    replica_a, replica_b = ChannelRepo(engine, clock, box), ChannelRepo(engine, clock, box)
    channel = replica_a.add("poor", "https://api.example.com/v1", KEY, ["gpt-image-1"])
    assert replica_a.claim_balance_probe(channel.id, 600)  # never probed: due
    assert not replica_b.claim_balance_probe(channel.id, 600)  # the other replica just did
    assert not replica_a.claim_balance_probe(channel.id, 600)
    clock.advance(599)
    assert not replica_b.claim_balance_probe(channel.id, 600)
    clock.advance(1)
    assert replica_b.claim_balance_probe(channel.id, 600)  # due again: one of them, once
    assert not replica_a.claim_balance_probe(channel.id, 600)
