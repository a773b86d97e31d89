"""Table definitions (SQLAlchemy Core). Alembic migrations in migrations/versions mirror them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),  # shown in listings; never enough to use
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 hex of the secret
    Column("tier", String(32), nullable=False, server_default="free"),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

images = Table(
    "images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("ext", String(8), nullable=False),
    Column("media_type", String(32), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
