"""Where the server-side commands find the server's data: one function opens every store.

Only `serve` creates a database. Every other command opens the one the server uses, found the
way the server finds it (IMAGEGATE_DATABASE_URL, else `<IMAGEGATE_DATA_DIR>/imagegate.db`, the
data directory relative to the current directory), and refuses to go on when there is none
there: a key written into a fresh database elsewhere would be unknown to the running server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from imagegate.accounts import Accounts
    from imagegate.channels import Channels
    from imagegate.config import Settings
    from imagegate.storage import stores as storage_stores
    from imagegate.storage.history import HistoryRepo


@dataclass
class Stores:
    """The account and channel code the /admin API runs, on the configured database."""

    engine: Engine
    accounts: Accounts
    channels: Channels | None  # None: no channel secret key here (none set, none in the data dir)
    history: HistoryRepo
    was_new: bool  # the database was created just now (serve only)
    location: str  # what the commands say when they name the database
    opened: storage_stores.Stores  # what `close` releases: the engine, the writer lock's file

    def close(self) -> None:
        self.opened.close()


def open_stores(settings: Settings, *, create: bool = False) -> Stores:
    """The server's stores (storage.stores.open_stores, the same wiring the app uses), as the
    commands need them. Without `create`, a missing database raises NoDatabase."""
    from imagegate.accounts import Accounts
    from imagegate.channels import Channels
    from imagegate.clock import SystemClock
    from imagegate.storage import stores

    opened = stores.open_stores(settings, SystemClock(), create=create)
    accounts = Accounts(settings, opened.keys, opened.ledger, opened.usage)
    channels = Channels(opened.channels) if opened.can_seal else None
    return Stores(
        opened.sql, accounts, channels, opened.history, opened.created, stores.describe(settings), opened
    )
