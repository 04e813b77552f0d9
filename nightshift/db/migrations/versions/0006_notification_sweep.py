"""notifications: the SQLite sweep lease, half-open breakers and their recorded state changes

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sweep_leases",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=36), nullable=False),
        sa.Column("lease_until", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sweep_leases")),
    )
    op.create_table(
        "provider_breaker_changes",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=30), nullable=False),
        sa.Column("provider_account", sa.String(length=100), nullable=False),
        sa.Column("from_state", sa.String(length=10), nullable=False),
        sa.Column("to_state", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp, server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_breaker_changes")),
    )
    op.create_index(op.f("ix_provider_breaker_changes_created_at"), "provider_breaker_changes", ["created_at"],
                    unique=False)
    with op.batch_alter_table("provider_breakers") as batch:
        batch.add_column(sa.Column("half_open_remaining", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("notification_attempts") as batch:
        batch.create_index(op.f("ix_notification_attempts_provider_account_started_at"),
                           ["provider_account", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notification_attempts") as batch:
        batch.drop_index(op.f("ix_notification_attempts_provider_account_started_at"))
    with op.batch_alter_table("provider_breakers") as batch:
        batch.drop_column("half_open_remaining")
    op.drop_index(op.f("ix_provider_breaker_changes_created_at"), table_name="provider_breaker_changes")
    op.drop_table("provider_breaker_changes")
    op.drop_table("sweep_leases")
