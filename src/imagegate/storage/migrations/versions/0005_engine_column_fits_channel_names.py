"""usage_records.engine holds "upstream:<channel name>" whole: a channel name may have 100
characters, and a 50-character column made PostgreSQL refuse the usage record of every request
relayed through a channel named with more than 41 (after the provider had answered).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Written out, as every migration's sizes are: bounds.ENGINE_NAME may change in a later revision.
ENGINE_NAME = 109  # len("upstream:") + 100


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.alter_column(
            "engine", existing_type=sa.String(50), type_=sa.String(ENGINE_NAME), existing_nullable=True
        )


def downgrade() -> None:
    # Names cut to the old size first, so PostgreSQL can narrow the column.
    op.execute(sa.text("UPDATE usage_records SET engine = substr(engine, 1, 50) WHERE length(engine) > 50"))
    with op.batch_alter_table("usage_records") as batch:
        batch.alter_column(
            "engine", existing_type=sa.String(ENGINE_NAME), type_=sa.String(50), existing_nullable=True
        )
