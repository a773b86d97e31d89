"""A running job counts the images it has made so far (`progress` on GET /v1/images/jobs/{id}).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image_jobs") as batch:
        batch.add_column(sa.Column("images_done", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("image_jobs") as batch:
        batch.drop_column("images_done")
