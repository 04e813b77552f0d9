"""ai: request waits, retries, holds in flight and cached output; template versions of contents; the shared
rate limit of the AI provider

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("ai_requests") as batch:
        batch.add_column(sa.Column("import_id", Id, nullable=True))
        batch.add_column(sa.Column("template_version", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("wait_reason", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("reservation_id", Id, nullable=True))
        batch.add_column(sa.Column("call_started_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("output_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_ai_requests_status_next_attempt_at"), ["status", "next_attempt_at"], unique=False)
        batch.create_index(op.f("ix_ai_requests_prompt_hash"), ["prompt_hash"], unique=False)
    with op.batch_alter_table("ai_contents") as batch:
        batch.add_column(sa.Column("template_version", sa.String(length=20), nullable=True))
    op.create_table(
        "ai_rate_limits",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("next_request_at", Timestamp, nullable=False),
        sa.Column("next_token_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ai_rate_limits")),
    )


def downgrade() -> None:
    op.drop_table("ai_rate_limits")
    with op.batch_alter_table("ai_contents") as batch:
        batch.drop_column("template_version")
    with op.batch_alter_table("ai_requests") as batch:
        batch.drop_index(op.f("ix_ai_requests_prompt_hash"))
        batch.drop_index(op.f("ix_ai_requests_status_next_attempt_at"))
        for column in ("latency_ms", "output_text", "call_started_at", "reservation_id", "next_attempt_at",
                       "wait_reason", "template_version", "import_id"):
            batch.drop_column(column)
