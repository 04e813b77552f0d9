"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 04:00:26.780984
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('monthly_token_quota', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('phone_region', sa.String(length=2), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('slug', name=op.f('uq_accounts_slug'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_key', sa.String(length=200), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('channels', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index(op.f('ix_alerts_alert_key_created_at'), 'alerts', ['alert_key', 'created_at'], unique=False)
    op.create_table('processed_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_key', sa.String(length=200), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_processed_messages')),
    sa.UniqueConstraint('message_key', name=op.f('uq_processed_messages_message_key'))
    )
    op.create_index(op.f('ix_processed_messages_expires_at'), 'processed_messages', ['expires_at'], unique=False)
    op.create_table('provider_breakers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('provider_account', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=10), server_default='closed', nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('open_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error_code', sa.String(length=60), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_breakers')),
    sa.UniqueConstraint('provider', 'provider_account', name=op.f('uq_provider_breakers_provider_provider_account'))
    )
    op.create_table('imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('profile', sa.String(length=50), nullable=True),
    sa.Column('profile_version', sa.String(length=20), nullable=True),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('duplicate_of_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('dry_run', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('encoding', sa.String(length=30), nullable=True),
    sa.Column('delimiter', sa.String(length=4), nullable=True),
    sa.Column('sheet', sa.String(length=255), nullable=True),
    sa.Column('header_line', sa.Integer(), nullable=True),
    sa.Column('rows_total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('inserted', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated', sa.Integer(), server_default='0', nullable=False),
    sa.Column('unchanged', sa.Integer(), server_default='0', nullable=False),
    sa.Column('invalid', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error_counts', sa.JSON(), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=True),
    sa.Column('rows_per_second', sa.Float(), nullable=True),
    sa.Column('error_report_path', sa.Text(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('dagster_run_id', sa.String(length=64), nullable=True),
    sa.Column('partition_key', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_imports_account_id_accounts')),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['imports.id'], name=op.f('fk_imports_duplicate_of_id_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imports'))
    )
    op.create_index(op.f('ix_imports_sha256'), 'imports', ['sha256'], unique=False)
    op.create_index(op.f('ix_imports_status_created_at'), 'imports', ['status', 'created_at'], unique=False)
    op.create_table('token_periods',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('quota', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('reserved', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_token_periods_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_token_periods')),
    sa.UniqueConstraint('account_id', 'period_start', name=op.f('uq_token_periods_account_id_period_start'))
    )
    op.create_table('categories',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('slug', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('meta_description', sa.Text(), nullable=True),
    sa.Column('sort_order', sa.Integer(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_categories_import_id_imports'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_categories')),
    sa.UniqueConstraint('slug', name=op.f('uq_categories_slug'))
    )
    op.create_table('cities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('slug', sa.String(length=255), nullable=False),
    sa.Column('postal_code', sa.String(length=10), nullable=False),
    sa.Column('department', sa.String(length=100), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_cities_import_id_imports'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cities')),
    sa.UniqueConstraint('slug', 'postal_code', name=op.f('uq_cities_slug_postal_code'))
    )
    op.create_table('clients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('first_name', sa.String(length=150), nullable=True),
    sa.Column('last_name', sa.String(length=150), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_clients_account_id_accounts')),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_clients_import_id_imports'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients')),
    sa.UniqueConstraint('phone', name=op.f('uq_clients_phone'))
    )
    op.create_table('import_errors',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('column', sa.String(length=255), nullable=True),
    sa.Column('raw_value', sa.Text(), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_import_errors_import_id_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_errors'))
    )
    op.create_index(op.f('ix_import_errors_import_id_line'), 'import_errors', ['import_id', 'line'], unique=False)
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source_app', sa.String(length=50), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('recipient', sa.String(length=32), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('message_type', sa.String(length=30), nullable=False),
    sa.Column('category', sa.String(length=50), nullable=True),
    sa.Column('title', sa.String(length=255), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), server_default='3', nullable=False),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='3', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=36), nullable=True),
    sa.Column('provider', sa.String(length=30), nullable=True),
    sa.Column('provider_account', sa.String(length=100), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('last_error_code', sa.String(length=60), nullable=True),
    sa.Column('last_error_class', sa.String(length=30), nullable=True),
    sa.Column('last_error_text', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_notifications_client_id_clients'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('source_app', 'idempotency_key', name=op.f('uq_notifications_source_app_idempotency_key'))
    )
    op.create_index(op.f('ix_notifications_provider_message_id'), 'notifications', ['provider_message_id'], unique=False)
    op.create_index(op.f('ix_notifications_source_app_created_at'), 'notifications', ['source_app', 'created_at'], unique=False)
    op.create_index(op.f('ix_notifications_status_lease_until'), 'notifications', ['status', 'lease_until'], unique=False)
    op.create_index(op.f('ix_notifications_status_next_attempt_at_priority'), 'notifications', ['status', 'next_attempt_at', 'priority'], unique=False)
    op.create_table('subcategories',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('category_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('slug', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('meta_description', sa.Text(), nullable=True),
    sa.Column('keywords', sa.Text(), nullable=True),
    sa.Column('sort_order', sa.Integer(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_subcategories_category_id_categories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_subcategories_import_id_imports'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subcategories')),
    sa.UniqueConstraint('category_id', 'slug', name=op.f('uq_subcategories_category_id_slug'))
    )
    op.create_table('businesses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('natural_key', sa.String(length=300), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('trade_name', sa.String(length=255), nullable=True),
    sa.Column('category_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('subcategory_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('siren', sa.String(length=9), nullable=True),
    sa.Column('siret', sa.String(length=14), nullable=True),
    sa.Column('naf_code', sa.String(length=6), nullable=True),
    sa.Column('naf_label', sa.String(length=255), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('postal_code', sa.String(length=10), nullable=True),
    sa.Column('city', sa.String(length=255), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('website', sa.Text(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('founded_on', sa.Date(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_businesses_account_id_accounts')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_businesses_category_id_categories'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_businesses_import_id_imports'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subcategory_id'], ['subcategories.id'], name=op.f('fk_businesses_subcategory_id_subcategories'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_businesses')),
    sa.UniqueConstraint('natural_key', name=op.f('uq_businesses_natural_key'))
    )
    op.create_index(op.f('ix_businesses_siren'), 'businesses', ['siren'], unique=False)
    op.create_index(op.f('ix_businesses_siret'), 'businesses', ['siret'], unique=False)
    op.create_index(op.f('ix_businesses_updated_at'), 'businesses', ['updated_at'], unique=False)
    op.create_table('notification_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('notification_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=30), nullable=True),
    sa.Column('provider_account', sa.String(length=100), nullable=True),
    sa.Column('outcome', sa.String(length=30), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error_code', sa.String(length=60), nullable=True),
    sa.Column('error_class', sa.String(length=30), nullable=True),
    sa.Column('error_text', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], name=op.f('fk_notification_attempts_notification_id_notifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_attempts'))
    )
    op.create_index(op.f('ix_notification_attempts_notification_id'), 'notification_attempts', ['notification_id'], unique=False)
    op.create_index(op.f('ix_notification_attempts_started_at'), 'notification_attempts', ['started_at'], unique=False)
    op.create_table('webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('provider', sa.String(length=30), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('notification_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error_text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], name=op.f('fk_webhook_events_notification_id_notifications'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_webhook_events_dedupe_key'))
    )
    op.create_index(op.f('ix_webhook_events_applied_at'), 'webhook_events', ['applied_at'], unique=False)
    op.create_table('ai_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('business_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('prompt_hash', sa.String(length=64), nullable=True),
    sa.Column('estimate_tokens', sa.BigInteger(), nullable=True),
    sa.Column('actual_tokens', sa.BigInteger(), nullable=True),
    sa.Column('usage_estimated', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=36), nullable=True),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('error_code', sa.String(length=60), nullable=True),
    sa.Column('error_text', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ai_requests_account_id_accounts')),
    sa.ForeignKeyConstraint(['business_id'], ['businesses.id'], name=op.f('fk_ai_requests_business_id_businesses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_requests')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ai_requests_idempotency_key'))
    )
    op.create_index(op.f('ix_ai_requests_status_lease_until'), 'ai_requests', ['status', 'lease_until'], unique=False)
    op.create_table('ai_contents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('business_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('prompt_hash', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['business_id'], ['businesses.id'], name=op.f('fk_ai_contents_business_id_businesses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['request_id'], ['ai_requests.id'], name=op.f('fk_ai_contents_request_id_ai_requests'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_contents')),
    sa.UniqueConstraint('business_id', 'kind', name=op.f('uq_ai_contents_business_id_kind'))
    )
    op.create_table('token_ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('entry_kind', sa.String(length=16), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_token_ledger_account_id_accounts')),
    sa.ForeignKeyConstraint(['period_id'], ['token_periods.id'], name=op.f('fk_token_ledger_period_id_token_periods')),
    sa.ForeignKeyConstraint(['request_id'], ['ai_requests.id'], name=op.f('fk_token_ledger_request_id_ai_requests'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_token_ledger')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_token_ledger_idempotency_key'))
    )
    op.create_index(op.f('ix_token_ledger_account_id_period_id'), 'token_ledger', ['account_id', 'period_id'], unique=False)
    op.create_index(op.f('ix_token_ledger_entry_kind_expires_at'), 'token_ledger', ['entry_kind', 'expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_token_ledger_entry_kind_expires_at'), table_name='token_ledger')
    op.drop_index(op.f('ix_token_ledger_account_id_period_id'), table_name='token_ledger')
    op.drop_table('token_ledger')
    op.drop_table('ai_contents')
    op.drop_index(op.f('ix_ai_requests_status_lease_until'), table_name='ai_requests')
    op.drop_table('ai_requests')
    op.drop_index(op.f('ix_webhook_events_applied_at'), table_name='webhook_events')
    op.drop_table('webhook_events')
    op.drop_index(op.f('ix_notification_attempts_started_at'), table_name='notification_attempts')
    op.drop_index(op.f('ix_notification_attempts_notification_id'), table_name='notification_attempts')
    op.drop_table('notification_attempts')
    op.drop_index(op.f('ix_businesses_updated_at'), table_name='businesses')
    op.drop_index(op.f('ix_businesses_siret'), table_name='businesses')
    op.drop_index(op.f('ix_businesses_siren'), table_name='businesses')
    op.drop_table('businesses')
    op.drop_table('subcategories')
    op.drop_index(op.f('ix_notifications_status_next_attempt_at_priority'), table_name='notifications')
    op.drop_index(op.f('ix_notifications_status_lease_until'), table_name='notifications')
    op.drop_index(op.f('ix_notifications_source_app_created_at'), table_name='notifications')
    op.drop_index(op.f('ix_notifications_provider_message_id'), table_name='notifications')
    op.drop_table('notifications')
    op.drop_index(op.f('ix_import_errors_import_id_line'), table_name='import_errors')
    op.drop_table('import_errors')
    op.drop_table('clients')
    op.drop_table('cities')
    op.drop_table('categories')
    op.drop_table('token_periods')
    op.drop_index(op.f('ix_imports_status_created_at'), table_name='imports')
    op.drop_index(op.f('ix_imports_sha256'), table_name='imports')
    op.drop_table('imports')
    op.drop_table('provider_breakers')
    op.drop_index(op.f('ix_processed_messages_expires_at'), table_name='processed_messages')
    op.drop_table('processed_messages')
    op.drop_index(op.f('ix_alerts_alert_key_created_at'), table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('accounts')
