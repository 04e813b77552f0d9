"""imports: failure kind and automatic retry count

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("imports") as batch:
        batch.add_column(sa.Column("failure_kind", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("auto_retries", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("auto_retries")
        batch.drop_column("failure_kind")
