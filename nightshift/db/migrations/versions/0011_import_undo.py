"""imports: undo. Each imported row records the import that created it (created_by_import_id; rows
imported before this upgrade have none and are never undone) and an import records when it was undone

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
IMPORTED_TABLES = ("categories", "subcategories", "cities", "businesses", "clients")


def upgrade() -> None:
    for table in IMPORTED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("created_by_import_id", Id, nullable=True))
    with op.batch_alter_table("imports") as batch:
        batch.add_column(sa.Column("undone_at", Timestamp, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("undone_at")
    for table in IMPORTED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("created_by_import_id")
