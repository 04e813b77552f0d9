"""token quotas: granted per period, reservations ended by settle/release/expire rows

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("token_periods") as batch:
        batch.add_column(sa.Column("granted", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("token_ledger") as batch:
        batch.add_column(sa.Column("reservation_id", Id, nullable=True))
        batch.add_column(sa.Column("estimated", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.create_foreign_key(op.f("fk_token_ledger_reservation_id_token_ledger"), "token_ledger",
                                 ["reservation_id"], ["id"])
        batch.create_index(op.f("ix_token_ledger_reservation_id"), ["reservation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("token_ledger") as batch:
        batch.drop_index(op.f("ix_token_ledger_reservation_id"))
        batch.drop_constraint(op.f("fk_token_ledger_reservation_id_token_ledger"), type_="foreignkey")
        batch.drop_column("estimated")
        batch.drop_column("reservation_id")
    with op.batch_alter_table("token_periods") as batch:
        batch.drop_column("granted")
