"""Rows of the tables the retention policies cover, inserted with chosen timestamps (a test's "now" is fixed)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.config import RetentionSettings
from nightshift.db.schema import (
    accounts,
    ai_requests,
    alerts,
    import_errors,
    imports,
    notification_attempts,
    notifications,
    processed_messages,
    token_ledger,
    token_periods,
    webhook_events,
)
from nightshift.retention.cleanup import run_policies
from nightshift.retention.policies import Retention, resolve
from nightshift.retention.run import PolicyReport, Run

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
_serial = itertools.count(1)


def key(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


def insert(engine: Engine, table: sa.Table, **values) -> int:
    with engine.begin() as conn:
        return conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one()


def account(engine: Engine) -> int:
    return insert(engine, accounts, slug=key("acct"), name="Account")


def processed_message(engine: Engine, at: datetime) -> int:
    return insert(engine, processed_messages, message_key=key("msg"), processed_at=at, expires_at=at)


def ai_request(engine: Engine, at: datetime, status: str, account_id: int | None = None, **values) -> int:
    return insert(engine, ai_requests, account_id=account_id or account(engine), kind="chat",
                  idempotency_key=key("req"), status=status, created_at=at, updated_at=at, **values)


def reservation(engine: Engine, account_id: int, request_id: int, *, ended: bool) -> int:
    period = insert(engine, token_periods, account_id=account_id, period_start=NOW.date().replace(day=1) -
                    timedelta(days=next(_serial)), quota=1000)
    reserve = insert(engine, token_ledger, account_id=account_id, period_id=period, request_id=request_id,
                     entry_kind="reserve", tokens=-100, idempotency_key=key("reserve"))
    if ended:
        insert(engine, token_ledger, account_id=account_id, period_id=period, request_id=request_id,
               entry_kind="settle", tokens=20, idempotency_key=key("end"), reservation_id=reserve)
    return reserve


def notification(engine: Engine, at: datetime, status: str = "delivered") -> int:
    return insert(engine, notifications, source_app="cargo", idempotency_key=key("notif"), recipient="+22370000000",
                  message_type="notification", body="Votre colis est arrivé", status=status, created_at=at,
                  updated_at=at)


def attempt(engine: Engine, notification_id: int, at: datetime) -> int:
    return insert(engine, notification_attempts, notification_id=notification_id, attempt_no=1, outcome="sent",
                  started_at=at)


def webhook_event(engine: Engine, received: datetime, applied: datetime | None, notification_id=None) -> int:
    return insert(engine, webhook_events, provider="meta", dedupe_key=key("hook"), payload="{}",
                  received_at=received, applied_at=applied, notification_id=notification_id)


def alert(engine: Engine, at: datetime) -> int:
    return insert(engine, alerts, alert_key="run_failure:x", severity="warning", message="failed", created_at=at)


def import_row(engine: Engine, at: datetime, status: str = "succeeded", file_path: Path | None = None,
               errors: int = 0, **values) -> int:
    import_id = insert(engine, imports, file_name="f.csv", sha256="0" * 64, size_bytes=1, status=status,
                       stage="done", created_at=at, finished_at=at,
                       file_path=str(file_path) if file_path else None, **values)
    if errors:
        with engine.begin() as conn:
            conn.execute(import_errors.insert(), [
                {"import_id": import_id, "line": line, "code": "invalid", "message": "bad"} for line in range(errors)])
    return import_id


def ids(engine: Engine, table: sa.Table) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id)).scalars())


def retention(**settings) -> Retention:
    return resolve(RetentionSettings(**settings))


def clean(engine: Engine, data_dir: Path, *names: str, dry_run: bool = False, **settings) -> dict[str, PolicyReport]:
    applied = retention(**settings)
    reports = run_policies(engine, applied, applied.selected(names), Run(NOW, data_dir, dry_run=dry_run))
    return {report.name: report for report in reports}
