"""Where the server-side commands find the server's data: one function opens every store.

Only `serve` creates a database. Every other command opens the one the server uses, found the
way the server finds it (IMAGEGATE_DATABASE_URL, else `<IMAGEGATE_DATA_DIR>/imagegate.db`, the
data directory relative to the current directory), and refuses to go on when there is none
there: a key written into a fresh database elsewhere would be unknown to the running server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from imagegate.accounts import Accounts
    from imagegate.channels import Channels
    from imagegate.config import Settings


class NoDatabase(Exception):
    """The configured database does not exist (and this command may not create it)."""


@dataclass
class Stores:
    """The account and channel code the /admin API runs, on the configured database."""

    engine: Engine
    accounts: Accounts
    channels: Channels | None  # None: no channel secret key here (none set, none in the data dir)
    was_new: bool  # the database was created just now (serve only)
    location: str  # what the commands say when they name the database

    def close(self) -> None:
        self.engine.dispose()


def describe(settings: Settings) -> str:
    """The database as a person should read it: the SQLite file's absolute path, else the URL."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return str(Path(url.database).resolve())
    return url.render_as_string(hide_password=True)


def open_stores(settings: Settings, *, create: bool = False) -> Stores:
    """Open (with `create`: create and migrate) the server's database and the stores on it.

    Without `create`, a database that does not exist raises NoDatabase before anything is
    written, and one that exists is brought to the newest schema as `serve` would.
    """
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from imagegate.accounts import Accounts
    from imagegate.channels import Channels
    from imagegate.clock import SystemClock
    from imagegate.storage.channels import ChannelRepo
    from imagegate.storage.db import make_engine, migrate
    from imagegate.storage.keys import KeyRepo
    from imagegate.storage.ledger import Ledger
    from imagegate.storage.secretbox import SecretBox
    from imagegate.storage.usage import UsageRepo

    location = describe(settings)
    url = make_url(settings.resolved_database_url)
    if not create and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).exists():  # checked first: connecting would create the file
            raise NoDatabase(location)
    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    if not create and not inspect(engine).has_table("alembic_version"):
        engine.dispose()
        raise NoDatabase(location)
    was_new = migrate(engine)
    clock = SystemClock()
    accounts = Accounts(settings, KeyRepo(engine, clock), Ledger(engine, clock), UsageRepo(engine))
    channels = None
    if create or settings.secret_key or (settings.data_dir / "secret-key").exists():
        box = SecretBox.from_settings(settings.secret_key, settings.data_dir)
        channels = Channels(ChannelRepo(engine, clock, box))
    return Stores(engine, accounts, channels, was_new, location)
