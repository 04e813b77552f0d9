"""The outbox, as the apps use it: enqueue (idempotent per app and key), look up, retry, cancel.

A message is a row of `notifications`; the sweep sends it. The phone is normalised at enqueue by the
one normaliser the imports use; an invalid number is refused, never guessed.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import notification_attempts, notifications
from nightshift.masking import mask_phone
from nightshift.notification_settings import NotificationSettings, ProviderAccount
from nightshift.phones import region_of, to_e164

DEFAULT_ACCOUNT = "default"
PRIORITIES = range(1, 6)
DUE_STATUSES = ("pending", "failed_retry")
# Final: the row will never be sent again (delivered and read come with receipts).
FINAL_STATUSES = ("sent", "delivered", "read", "failed_final", "expired", "cancelled")
STATUSES = ("pending", "sending", "sent", "delivered", "read", "failed_retry", "failed_final", "unknown",
            "expired", "cancelled")
SCRUBBED_BODY = ""


class NotificationError(ValueError):
    """A bad request to the outbox (unknown type, invalid phone …); the message names the field."""


@dataclass(frozen=True)
class Enqueued:
    id: int
    status: str
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "created": self.created}


def now_utc() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their offset; they are stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def route(settings: NotificationSettings, source_app: str, phone_region: str | None) -> ProviderAccount | None:
    """The provider account of a message: the one serving its app, else the one of its recipient's region."""
    for account in settings.accounts:
        if source_app in account.source_apps:
            return account
    for account in settings.accounts:
        if phone_region is not None and phone_region in account.regions:
            return account
    return None


def prepare(settings: NotificationSettings, *, source_app: str, to: str, body: str, message_type: str,
            category: str | None = None, title: str | None = None, priority: int = 3,
            idempotency_key: str | None = None, ttl: timedelta | None = None, max_attempts: int | None = None,
            region: str | None = None, client_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The outbox row of one message, checked (NotificationError names the bad field)."""
    if not source_app or len(source_app) > 50:
        raise NotificationError(f"source_app: {source_app!r} must be a name of 1 to 50 characters")
    kind = settings.types.get(message_type)
    if kind is None:
        raise NotificationError(f"message_type: {message_type!r} is not a known type "
                                f"(known: {', '.join(sorted(settings.types))}; add one under notifications.types)")
    if priority not in PRIORITIES:
        raise NotificationError(f"priority: {priority!r} must be 1 (highest) to 5")
    if not body or not body.strip():
        raise NotificationError("body: the message is empty")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 200:
        raise NotificationError("idempotency_key: must be 1 to 200 characters")
    app_account = route(settings, source_app, None)
    read_region = region or (app_account.phone_region if app_account else None) or settings.default_phone_region
    recipient = to_e164(to.strip(), read_region)
    if recipient is None:
        raise NotificationError(
            f"to: {mask_phone(to)} is not a valid phone number for region {read_region}: write it with its "
            "country code (e.g. +22370123456) or give the region it belongs to")
    account = route(settings, source_app, region_of(recipient))
    policy = settings.backoff[kind.backoff]
    now = now or now_utc()
    return {
        "source_app": source_app,
        "idempotency_key": idempotency_key or f"auto:{uuid.uuid4().hex}",
        "recipient": recipient,
        "client_id": client_id,
        "message_type": message_type,
        "category": category,
        "title": title,
        "body": body,
        "priority": priority,
        "status": "pending",
        "attempts": 0,
        "max_attempts": max_attempts or policy.max_attempts,
        "next_attempt_at": now,
        "expires_at": now + (ttl if ttl is not None else timedelta(seconds=kind.ttl_seconds)),
        "provider_account": account.name if account else DEFAULT_ACCOUNT,
        "created_at": now,
        "updated_at": now,
    }


def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose (source_app, idempotency_key) is new; the number inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(notifications).on_conflict_do_nothing(
        index_elements=["source_app", "idempotency_key"]).returning(notifications.c.id)
    # Counted from RETURNING: an executemany's rowcount is not reliable on PostgreSQL.
    return len(conn.execute(statement, rows).all())


def enqueue_rows(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Prepared rows into the outbox inside the caller's transaction; returns how many were new."""
    return _insert_new(conn, list(rows))


def enqueue(engine: Engine, settings: NotificationSettings, **request: Any) -> Enqueued:
    """One message into the outbox. The same (source_app, idempotency_key) again returns the existing
    notification and creates nothing."""
    row = prepare(settings, **request)
    with write_transaction(engine) as conn:
        created = _insert_new(conn, [row]) == 1
        found = conn.execute(sa.select(notifications.c.id, notifications.c.status).where(
            notifications.c.source_app == row["source_app"],
            notifications.c.idempotency_key == row["idempotency_key"])).one()
    return Enqueued(found.id, found.status, created)


def is_sensitive(settings: NotificationSettings, message_type: str) -> bool:
    kind = settings.types.get(message_type)
    return kind is None or kind.sensitive


def scrubbed_body(settings: NotificationSettings):
    """The body column once a row is final: sensitive bodies are emptied in the same UPDATE."""
    return _scrubbed_body(tuple(sorted(name for name, kind in settings.types.items() if kind.sensitive)))


@functools.cache
def _scrubbed_body(sensitive_types: tuple[str, ...]):
    # Built once per set of types: the sweep asks for it for every row it finalises.
    # One comparison per type rather than IN: an IN list cannot be part of an executemany.
    sensitive = [notifications.c.message_type == name for name in sensitive_types]
    return sa.case((sa.or_(sa.false(), *sensitive), SCRUBBED_BODY), else_=notifications.c.body)


def describe(row: Any, settings: NotificationSettings) -> dict[str, Any]:
    """A notification as the CLI and UI show it: phone masked, no body of a sensitive type."""
    def iso(value: datetime | None) -> str | None:
        value = as_utc(value)
        return value.isoformat() if value else None

    shown = {
        "id": row.id, "source_app": row.source_app, "to": mask_phone(row.recipient), "type": row.message_type,
        "priority": row.priority, "status": row.status, "attempts": row.attempts, "max_attempts": row.max_attempts,
        "next_attempt_at": iso(row.next_attempt_at), "expires_at": iso(row.expires_at),
        "provider": row.provider, "provider_account": row.provider_account,
        "provider_message_id": row.provider_message_id, "last_error_code": row.last_error_code,
        "last_error_class": row.last_error_class, "created_at": iso(row.created_at), "sent_at": iso(row.sent_at),
    }
    if not is_sensitive(settings, row.message_type):
        shown["title"] = row.title
    return shown


def get(engine: Engine, notification_id: int) -> Any:
    with read_transaction(engine) as conn:
        row = conn.execute(sa.select(notifications).where(notifications.c.id == notification_id)).first()
    if row is None:
        raise NotificationError(f"ID: no notification {notification_id}")
    return row


def attempts_of(engine: Engine, notification_id: int) -> list[dict[str, Any]]:
    columns = notification_attempts.c
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(columns.attempt_no, columns.provider, columns.outcome, columns.http_status,
                                      columns.error_code, columns.latency_ms, columns.started_at)
                            .where(columns.notification_id == notification_id).order_by(columns.id)).all()
    return [{"attempt": r.attempt_no, "provider": r.provider, "outcome": r.outcome, "http_status": r.http_status,
             "error_code": r.error_code, "latency_ms": r.latency_ms,
             "started_at": as_utc(r.started_at).isoformat()} for r in rows]


def select_rows(engine: Engine, *, status: str | None = None, source_app: str | None = None,
                since: datetime | None = None, limit: int | None = None) -> list[Any]:
    query = sa.select(notifications).order_by(notifications.c.id)
    if status is not None:
        query = query.where(notifications.c.status == status)
    if source_app is not None:
        query = query.where(notifications.c.source_app == source_app)
    if since is not None:
        query = query.where(notifications.c.created_at >= since)
    if limit is not None:
        query = query.limit(limit)
    with read_transaction(engine) as conn:
        return conn.execute(query).all()


def retry(engine: Engine, *, notification_id: int | None = None, source_app: str | None = None,
          now: datetime | None = None) -> int:
    """Failed notifications (failed_retry or failed_final) due now again; attempts are kept, and a row
    out of attempts gets one more. Expired, cancelled, sent and ambiguous rows are left alone."""
    now = now or now_utc()
    condition = notifications.c.status.in_(("failed_retry", "failed_final"))
    if notification_id is not None:
        condition = sa.and_(condition, notifications.c.id == notification_id)
    if source_app is not None:
        condition = sa.and_(condition, notifications.c.source_app == source_app)
    with write_transaction(engine) as conn:
        return conn.execute(notifications.update().where(
            condition, notifications.c.body != SCRUBBED_BODY,
            sa.or_(notifications.c.expires_at.is_(None), notifications.c.expires_at > now)).values(
            status="failed_retry", next_attempt_at=now, updated_at=now,
            max_attempts=sa.func.max(notifications.c.max_attempts, notifications.c.attempts + 1)
            if conn.dialect.name == "sqlite" else
            sa.func.greatest(notifications.c.max_attempts, notifications.c.attempts + 1))).rowcount


def cancel(engine: Engine, settings: NotificationSettings, notification_id: int, *,
           now: datetime | None = None) -> int:
    """Cancel a notification that is not being sent and not final; returns 1 when it was cancelled."""
    now = now or now_utc()
    with write_transaction(engine) as conn:
        return conn.execute(notifications.update().where(
            notifications.c.id == notification_id,
            notifications.c.status.in_(("pending", "failed_retry", "unknown"))).values(
            status="cancelled", body=scrubbed_body(settings), updated_at=now, claim_token=None,
            lease_until=None)).rowcount
