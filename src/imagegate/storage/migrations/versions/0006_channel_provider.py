"""Channels name the provider kind they speak (engines/providers.py), its settings (Azure's
deployment and api-version, Vertex's project and location) and the operator's overrides of the
model's capabilities. Existing channels speak OpenAI's wire, as before.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PROVIDER_KIND = 32  # written out: bounds.PROVIDER_KIND may change in a later revision


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(
            sa.Column("provider", sa.String(PROVIDER_KIND), nullable=False, server_default="openai")
        )
        batch.add_column(sa.Column("options", sa.Text(), nullable=True))
        batch.add_column(sa.Column("capabilities", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("capabilities")
        batch.drop_column("options")
        batch.drop_column("provider")
