"""token ledger: account_id follows its period, without a foreign key of its own

Opening a month writes one grant row per account; each row pays one key check (its period's, which
names the account), not two.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("token_ledger") as batch:
        batch.drop_constraint("fk_token_ledger_account_id_accounts", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("token_ledger") as batch:
        batch.create_foreign_key("fk_token_ledger_account_id_accounts", "accounts", ["account_id"], ["id"])
