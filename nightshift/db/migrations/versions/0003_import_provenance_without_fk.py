"""imported rows: import_id is provenance, without a foreign key to the (pruned) import log

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("categories", "subcategories", "cities", "businesses", "clients")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_import_id_imports", type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        # Provenance of pruned import logs cannot be a foreign key.
        op.execute(f"UPDATE {table} SET import_id = NULL WHERE import_id NOT IN (SELECT id FROM imports)")
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_import_id_imports", "imports", ["import_id"], ["id"],
                                     ondelete="SET NULL")
