"""clients: the city a client file gives (`ville`), so a campaign can target one city

The clients' content hash covers the new column: a client's next import after this upgrade counts it as
updated once (its city is written), however unchanged the file.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("city", sa.String(length=255), nullable=True))
        batch.create_index(op.f("ix_clients_city"), ["city"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_index(op.f("ix_clients_city"))
        batch.drop_column("city")
