"""The whole application schema (SQLAlchemy 2 Core). Identical on SQLite and PostgreSQL.

Later features add behaviour, not tables; a new column comes with a new Alembic migration.
"""

from __future__ import annotations

import sqlalchemy as sa

# Constraint names are deterministic so migrations and reflection agree on both backends.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, *, nullable: bool = True, ondelete: str | None = None) -> sa.Column:
    return sa.Column(name, Id, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _written_by_import() -> sa.Column:
    """The import that last wrote the row: provenance, deliberately without a foreign key. The import
    log is pruned by retention while the rows stay, and a key check would cost an index probe and a
    lock on the log row for every imported row (a quarter of a million-row merge on PostgreSQL)."""
    return sa.Column("import_id", Id)


def _created_by_import() -> sa.Column:
    """The import that inserted the row (none for rows older than undo): what `imports undo` may delete."""
    return sa.Column("created_by_import_id", Id)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
        sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    ]


accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("slug", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("monthly_token_quota", sa.BigInteger, nullable=False, server_default="0"),
    # What unused tokens of a month become: none | full | capped:N (nightshift.quotas.accounts.Rollover).
    sa.Column("rollover", sa.String(30), nullable=False, server_default="none"),
    sa.Column("phone_region", sa.String(2)),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    *_timestamps(),
)

token_periods = sa.Table(
    "token_periods",
    metadata,
    _id(),
    _fk("account_id", "accounts.id", nullable=False, ondelete="CASCADE"),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("quota", sa.BigInteger, nullable=False),
    # Sum of the period's grant and adjust rows (quota, rollover, top-ups): what may be spent.
    sa.Column("granted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("used", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    *_timestamps(),
    sa.UniqueConstraint("account_id", "period_start"),
)

# The import log's statuses that several places test: what a run is still doing with an import (a dead
# process leaves them so), and how an import ended without its rows (what a retry or a backfill runs again).
IMPORT_IN_PROGRESS = ("received", "running")
IMPORT_ENDED_WITHOUT_ROWS = ("failed", "interrupted")

imports = sa.Table(
    "imports",
    metadata,
    _id(),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("file_path", sa.Text),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("profile", sa.String(50)),
    sa.Column("profile_version", sa.String(20)),
    _fk("account_id", "accounts.id"),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("stage", sa.String(20), nullable=False),
    _fk("duplicate_of_id", "imports.id"),
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("encoding", sa.String(30)),
    sa.Column("delimiter", sa.String(4)),
    sa.Column("sheet", sa.String(255)),
    sa.Column("header_line", sa.Integer),
    sa.Column("rows_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("invalid", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_counts", sa.JSON),
    sa.Column("timings", sa.JSON),
    sa.Column("rows_per_second", sa.Float),
    sa.Column("error_report_path", sa.Text),
    sa.Column("message", sa.Text),
    # bad_input (waits for a fixed upload) | transient (re-requested once) | internal
    sa.Column("failure_kind", sa.String(20)),
    sa.Column("auto_retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("partition_key", sa.String(255)),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("finished_at", Timestamp),
    sa.Column("undone_at", Timestamp),
    sa.Index(None, "sha256"),
    sa.Index(None, "status", "created_at"),
)

import_errors = sa.Table(
    "import_errors",
    metadata,
    _id(),
    _fk("import_id", "imports.id", nullable=False, ondelete="CASCADE"),
    sa.Column("line", sa.Integer),
    sa.Column("column", sa.String(255)),
    sa.Column("raw_value", sa.Text),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index(None, "import_id", "line"),
)

categories = sa.Table(
    "categories",
    metadata,
    _id(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("slug", sa.String(255), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("meta_description", sa.Text),
    sa.Column("sort_order", sa.Integer),
    sa.Column("content_hash", sa.String(64)),
    _written_by_import(),
    _created_by_import(),
    *_timestamps(),
)

subcategories = sa.Table(
    "subcategories",
    metadata,
    _id(),
    _fk("category_id", "categories.id", nullable=False, ondelete="CASCADE"),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("slug", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("meta_description", sa.Text),
    sa.Column("keywords", sa.Text),
    sa.Column("sort_order", sa.Integer),
    sa.Column("content_hash", sa.String(64)),
    _written_by_import(),
    _created_by_import(),
    *_timestamps(),
    sa.UniqueConstraint("category_id", "slug"),
)

cities = sa.Table(
    "cities",
    metadata,
    _id(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("slug", sa.String(255), nullable=False),
    sa.Column("postal_code", sa.String(10), nullable=False),
    sa.Column("department", sa.String(100)),
    sa.Column("region", sa.String(100)),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("population", sa.Integer),
    sa.Column("content_hash", sa.String(64)),
    _written_by_import(),
    _created_by_import(),
    *_timestamps(),
    sa.UniqueConstraint("slug", "postal_code"),
)

businesses = sa.Table(
    "businesses",
    metadata,
    _id(),
    # siret when present, else siren, else normalised (name, postal code or city): see imports profiles.
    sa.Column("natural_key", sa.String(300), nullable=False, unique=True),
    _fk("account_id", "accounts.id"),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("trade_name", sa.String(255)),
    _fk("category_id", "categories.id", ondelete="SET NULL"),
    _fk("subcategory_id", "subcategories.id", ondelete="SET NULL"),
    sa.Column("siren", sa.String(9)),
    sa.Column("siret", sa.String(14)),
    sa.Column("naf_code", sa.String(6)),
    sa.Column("naf_label", sa.String(255)),
    sa.Column("address", sa.Text),
    sa.Column("postal_code", sa.String(10)),
    sa.Column("city", sa.String(255)),
    sa.Column("phone", sa.String(20)),
    sa.Column("email", sa.String(254)),
    sa.Column("website", sa.Text),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("founded_on", sa.Date),
    sa.Column("is_active", sa.Boolean),
    sa.Column("description", sa.Text),
    # Hash of the imported content: downstream AI work runs only for inserted or changed rows.
    sa.Column("content_hash", sa.String(64), nullable=False),
    _written_by_import(),
    _created_by_import(),
    *_timestamps(),
    sa.Index(None, "siren"),
    sa.Index(None, "siret"),
    sa.Index(None, "updated_at"),
)

clients = sa.Table(
    "clients",
    metadata,
    _id(),
    sa.Column("phone", sa.String(20), nullable=False, unique=True),
    _fk("account_id", "accounts.id"),
    sa.Column("first_name", sa.String(150)),
    sa.Column("last_name", sa.String(150)),
    sa.Column("email", sa.String(254)),
    sa.Column("region", sa.String(100)),
    sa.Column("city", sa.String(255), index=True),
    sa.Column("content_hash", sa.String(64)),
    _written_by_import(),
    _created_by_import(),
    *_timestamps(),
)

ai_requests = sa.Table(
    "ai_requests",
    metadata,
    _id(),
    _fk("account_id", "accounts.id", nullable=False),
    _fk("business_id", "businesses.id", ondelete="SET NULL"),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    # pending -> processing -> completed | failed | timeout
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("prompt_hash", sa.String(64)),
    sa.Column("estimate_tokens", sa.BigInteger),
    sa.Column("actual_tokens", sa.BigInteger),
    sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_until", Timestamp),
    sa.Column("claim_token", sa.String(36)),
    sa.Column("model", sa.String(100)),
    sa.Column("error_code", sa.String(60)),
    sa.Column("error_text", sa.Text),
    *_timestamps(),
    sa.Column("completed_at", Timestamp),
    # The import whose rows asked for it: provenance without a key, like the rows' own import_id.
    sa.Column("import_id", Id),
    sa.Column("template_version", sa.String(20)),
    # Why a pending request waits (quota); when a temporary failure or a timeout may be tried again (NULL
    # on a failed request: permanent, the old dead letter).
    sa.Column("wait_reason", sa.String(20)),
    sa.Column("next_attempt_at", Timestamp),
    # The hold of the ask in flight (a token_ledger reserve row; no key: the ledger already points here).
    sa.Column("reservation_id", Id),
    # Set just before the HTTP call: an abandoned request with it may have been billed (settled at the hold).
    sa.Column("call_started_at", Timestamp),
    # The validated text: the cache a later request with the same prompt_hash reuses without a call.
    sa.Column("output_text", sa.Text),
    sa.Column("latency_ms", sa.Integer),
    sa.Index(None, "status", "lease_until"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "prompt_hash"),
)

ai_contents = sa.Table(
    "ai_contents",
    metadata,
    _id(),
    _fk("business_id", "businesses.id", nullable=False, ondelete="CASCADE"),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("model", sa.String(100)),
    sa.Column("prompt_hash", sa.String(64)),
    _fk("request_id", "ai_requests.id", ondelete="SET NULL"),
    *_timestamps(),
    sa.Column("template_version", sa.String(20)),
    sa.UniqueConstraint("business_id", "kind"),
)

# The AI provider's client-side rate limit, shared by every process: the earliest moment the next request
# may start (requests per minute) and the moment the tokens already sent are paid off (tokens per minute).
ai_rate_limits = sa.Table(
    "ai_rate_limits",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("next_request_at", Timestamp, nullable=False),
    sa.Column("next_token_at", Timestamp, nullable=False),
)

token_ledger = sa.Table(
    "token_ledger",
    metadata,
    _id(),
    # The account of the period, without a key of its own: period_id's key covers it, and opening a month
    # writes a ledger row per account.
    sa.Column("account_id", Id, nullable=False),
    # The period is pinned at reserve time so usage across a month boundary lands where it began.
    _fk("period_id", "token_periods.id", nullable=False),
    _fk("request_id", "ai_requests.id", ondelete="SET NULL"),
    sa.Column("entry_kind", sa.String(16), nullable=False),  # grant | reserve | settle | release | expire | adjust
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    # The reserve row a settle, release or expire ends (each reservation is ended once: key end:<id>).
    _fk("reservation_id", "token_ledger.id"),
    # A settle whose actual is the hold because the real usage is unknown (timeout after billing).
    sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires_at", Timestamp),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Index(None, "entry_kind", "expires_at"),
    sa.Index(None, "account_id", "period_id"),
    sa.Index(None, "reservation_id"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    _id(),
    sa.Column("source_app", sa.String(50), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("recipient", sa.String(32), nullable=False),
    _fk("client_id", "clients.id", ondelete="SET NULL"),
    sa.Column("message_type", sa.String(30), nullable=False),
    sa.Column("category", sa.String(50)),
    sa.Column("title", sa.String(255)),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="3"),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("next_attempt_at", Timestamp),
    sa.Column("expires_at", Timestamp),
    sa.Column("lease_until", Timestamp),
    sa.Column("claim_token", sa.String(36)),
    sa.Column("provider", sa.String(30)),
    sa.Column("provider_account", sa.String(100)),
    sa.Column("provider_message_id", sa.String(200)),
    sa.Column("last_error_code", sa.String(60)),
    sa.Column("last_error_class", sa.String(30)),
    sa.Column("last_error_text", sa.Text),
    *_timestamps(),
    sa.Column("sent_at", Timestamp),
    sa.Column("delivered_at", Timestamp),
    sa.Column("read_at", Timestamp),
    sa.UniqueConstraint("source_app", "idempotency_key"),
    # The sweep's claim query: due rows by status, then due time, then priority.
    sa.Index(None, "status", "next_attempt_at", "priority"),
    # The reaper: expired leases of rows stuck in "sending".
    sa.Index(None, "status", "lease_until"),
    sa.Index(None, "provider_message_id"),
    sa.Index(None, "source_app", "created_at"),
)

notification_attempts = sa.Table(
    "notification_attempts",
    metadata,
    _id(),
    _fk("notification_id", "notifications.id", nullable=False, ondelete="CASCADE"),
    sa.Column("attempt_no", sa.Integer, nullable=False),
    sa.Column("provider", sa.String(30)),
    sa.Column("provider_account", sa.String(100)),
    sa.Column("outcome", sa.String(30), nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("error_code", sa.String(60)),
    sa.Column("error_class", sa.String(30)),
    sa.Column("error_text", sa.Text),
    sa.Column("latency_ms", sa.Integer),
    sa.Column("started_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Index(None, "notification_id"),
    sa.Index(None, "started_at"),
    # The breaker's failure ratio: an account's attempts of the last hour.
    sa.Index(None, "provider_account", "started_at"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    _id(),
    sa.Column("provider", sa.String(30), nullable=False),
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    sa.Column("payload", sa.Text, nullable=False),
    _fk("notification_id", "notifications.id", ondelete="SET NULL"),
    sa.Column("received_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("applied_at", Timestamp),
    sa.Column("error_text", sa.Text),
    sa.Index(None, "applied_at"),
    # What applying did (applied | stale | orphan | inbound | invalid); an event for a message id not known
    # yet (an orphan) is tried again at next_attempt_at until the reconcile window ends.
    sa.Column("outcome", sa.String(20)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", Timestamp),
)

provider_breakers = sa.Table(
    "provider_breakers",
    metadata,
    _id(),
    sa.Column("provider", sa.String(30), nullable=False),
    sa.Column("provider_account", sa.String(100), nullable=False),
    sa.Column("state", sa.String(10), nullable=False, server_default="closed"),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("opened_at", Timestamp),
    sa.Column("open_until", Timestamp),
    sa.Column("last_error_code", sa.String(60)),
    sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    # Messages a half-open breaker still lets through before it closes.
    sa.Column("half_open_remaining", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("provider", "provider_account"),
)

# Every state change of a breaker (closed -> open -> half_open -> closed), for alerts and the UI.
provider_breaker_changes = sa.Table(
    "provider_breaker_changes",
    metadata,
    _id(),
    sa.Column("provider", sa.String(30), nullable=False),
    sa.Column("provider_account", sa.String(100), nullable=False),
    sa.Column("from_state", sa.String(10), nullable=False),
    sa.Column("to_state", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Index(None, "created_at"),
)

# Application locks with expiry: on SQLite one notification sweep at a time holds "notification_sweep".
sweep_leases = sa.Table(
    "sweep_leases",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("holder", sa.String(36), nullable=False),
    sa.Column("lease_until", Timestamp, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    _id(),
    sa.Column("alert_key", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.JSON),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    # Cooldown between similar alerts is measured from the last sent_at for the same key.
    sa.Column("sent_at", Timestamp),
    sa.Column("channels", sa.String(100)),
    sa.Index(None, "alert_key", "created_at"),
    # When the condition cleared (its recovery message is the row of the same key with severity "info").
    sa.Column("resolved_at", Timestamp),
)

processed_messages = sa.Table(
    "processed_messages",
    metadata,
    _id(),
    sa.Column("message_key", sa.String(200), nullable=False, unique=True),
    sa.Column("processed_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Index(None, "expires_at"),
)
