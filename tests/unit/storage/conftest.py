"""What the storage unit tests share: a migrated SQLite file. Named apart from the root
conftest's `engine`, which runs a test on SQLite and PostgreSQL both and which these do not
replace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from imagegate.storage.db import make_engine, migrate


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(eng)
    yield eng
    eng.dispose()
