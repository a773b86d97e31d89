"""Persistence: SQLAlchemy tables and repositories, Alembic migrations, the blob store."""
