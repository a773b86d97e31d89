"""Asynchronous image jobs (Prefer: respond-async), each key's webhook signing secret, and the
image history (what each request that delivered images asked for and made).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Written out: storage/bounds.py may change in a later revision.
MODEL_NAME, REQUEST_ID, BASE_URL, IDEMPOTENCY_KEY, WEBHOOK_URL = 100, 64, 500, 255, 2000
ENGINE_NAME, CHANNEL_NAME = 109, 100


def upgrade() -> None:
    op.create_table(
        "image_jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(MODEL_NAME), nullable=False),
        sa.Column("request_id", sa.String(REQUEST_ID), nullable=False),
        sa.Column("base_url", sa.String(BASE_URL), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("uploads", sa.Text(), nullable=True),
        sa.Column("multipart", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reservation_id", sa.String(64), nullable=False),
        sa.Column("reserved_micros", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(IDEMPOTENCY_KEY), nullable=True),
        sa.Column("webhook_url", sa.String(WEBHOOK_URL), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("worker", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("cancel_requested", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("webhook_status", sa.String(16), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("webhook_next_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id", "idempotency_key", name="uq_image_jobs_key_idempotency"),
    )
    op.create_index("ix_image_jobs_status_created", "image_jobs", ["status", "created_at"])
    op.create_index("ix_image_jobs_key_created", "image_jobs", ["key_id", "created_at"])
    op.create_table(
        "webhook_secrets",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "image_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(REQUEST_ID), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("model", sa.String(MODEL_NAME), nullable=True),
        sa.Column("engine", sa.String(ENGINE_NAME), nullable=True),
        sa.Column("channel", sa.String(CHANNEL_NAME), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_image_history_key_id", "image_history", ["key_id", "id"])
    op.create_index("ix_image_history_expires", "image_history", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_image_history_expires", "image_history")
    op.drop_index("ix_image_history_key_id", "image_history")
    op.drop_table("image_history")
    op.drop_table("webhook_secrets")
    op.drop_index("ix_image_jobs_key_created", "image_jobs")
    op.drop_index("ix_image_jobs_status_created", "image_jobs")
    op.drop_table("image_jobs")
