"""Delivery receipts: the stored webhook events applied to their notifications.

Statuses only move forward (sent < delivered < read), whatever order the receipts arrive in; `failed`
applies only over sending, sent or unknown (a delivered message stays delivered). An `unknown`
notification (its send was ambiguous) that gets a receipt is resolved and never sent again. A receipt is
matched by Meta's `biz_opaque_callback_data` (our notification id), else by the provider's message id;
one whose message is not known yet (an orphan: the receipt beat the sweep's finalise) is tried again
until the reconcile window ends, then reported. Every update is conditional, so applying an event twice,
or two appliers at once, changes nothing more.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, utc, write_transaction
from nightshift.db.schema import notifications, webhook_events
from nightshift.notification_settings import NotificationSettings
from nightshift.notifications.backoff import retry_delay
from nightshift.notifications.classify import Outcome, classify
from nightshift.notifications.outbox import now_utc, scrubbed_body

RANK = {"sent": 1, "delivered": 2, "read": 3}
# A notification at one of these has had at least this receipt: a lower one changes nothing.
AT_LEAST = {status: tuple(s for s, rank in RANK.items() if rank >= RANK[status]) for status in RANK}
FAILABLE = ("sending", "sent", "unknown")
TIMESTAMP_COLUMN = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at"}
# Provider words for the four statuses (WaChap's are not documented: those seen in client code).
STATUS_WORDS = {"sent": "sent", "server_ack": "sent", "delivered": "delivered", "delivery_ack": "delivered",
                "read": "read", "seen": "read", "played": "read", "failed": "failed", "error": "failed"}
ORPHAN_RETRY = timedelta(seconds=60)
BATCH = 500


@dataclass(frozen=True)
class Receipt:
    provider: str
    message_id: str
    status: str  # sent | delivered | read | failed
    at: datetime
    notification_id: int | None = None  # Meta's biz_opaque_callback_data
    error_code: str | None = None
    error_text: str | None = None


@dataclass
class Applied:
    counts: Counter = field(default_factory=Counter)
    orphans: list[str] = field(default_factory=list)  # message ids reported: the window ended unmatched

    def as_dict(self) -> dict[str, Any]:
        return {**{key: self.counts[key] for key in ("applied", "stale", "orphan_waiting", "orphaned", "inbound",
                                                     "ignored")}, "orphans": self.orphans}


def _moment(value: Any, fallback: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def parse(provider: str, dedupe_key: str, payload: str, received_at: datetime) -> Receipt | None:
    """The receipt an event carries; None for an inbound message or a body we do not know."""
    if ":status:" not in dedupe_key:
        return None
    item = json.loads(payload)
    status = STATUS_WORDS.get(str(item.get("status", "")).lower())
    message_id = item.get("id") if provider == "meta" else item.get("messageId") or item.get("id")
    if status is None or not message_id:
        return None
    opaque = str(item.get("biz_opaque_callback_data") or "")
    error_code = error_text = None
    errors = item.get("errors") or ([item["error"]] if isinstance(item.get("error"), dict) else [])
    if errors and isinstance(errors[0], dict):
        error_code = str(errors[0].get("code")) if errors[0].get("code") is not None else None
        error_text = errors[0].get("title") or errors[0].get("message")
    return Receipt(provider, str(message_id), status, _moment(item.get("timestamp"), received_at),
                   int(opaque) if opaque.isdigit() else None, error_code, error_text)


FOUND_COLUMNS = (notifications.c.id, notifications.c.attempts, notifications.c.max_attempts,
                 notifications.c.message_type, notifications.c.provider_message_id)


class _Matches:
    """The notifications a batch of receipts names, read in two queries for the whole batch."""

    def __init__(self, conn: Connection, receipts: list[Receipt]) -> None:
        ids = sorted({r.notification_id for r in receipts if r.notification_id is not None})
        message_ids = sorted({r.message_id for r in receipts})
        self.by_id = {row.id: row for row in conn.execute(
            sa.select(*FOUND_COLUMNS).where(notifications.c.id.in_(ids)))} if ids else {}
        self.by_message_id: dict[str, Any] = {}
        for row in conn.execute(sa.select(*FOUND_COLUMNS).where(notifications.c.provider_message_id.in_(message_ids))
                                .order_by(notifications.c.id.desc())):
            self.by_message_id[row.provider_message_id] = row  # the lowest id wins, as before

    def find(self, receipt: Receipt) -> Any:
        row = self.by_id.get(receipt.notification_id)
        # The echoed id is trusted only when the message id does not contradict it.
        if row is not None and row.provider_message_id in (None, receipt.message_id):
            return row
        return self.by_message_id.get(receipt.message_id)


def _update(conn: Connection, settings: NotificationSettings, row: Any, receipt: Receipt, now: datetime) -> bool:
    """The notification moved by the receipt; False when it already was there or beyond."""
    mine = notifications.update().where(notifications.c.id == row.id)
    common = {"provider_message_id": sa.func.coalesce(notifications.c.provider_message_id, receipt.message_id),
              "body": scrubbed_body(settings), "updated_at": now}
    if receipt.status in RANK:
        stamp = TIMESTAMP_COLUMN[receipt.status]
        values = {**common, "status": receipt.status, "next_attempt_at": None,
                  stamp: sa.func.coalesce(notifications.c[stamp], receipt.at),
                  "sent_at": sa.func.coalesce(notifications.c.sent_at, receipt.at)}
        return conn.execute(mine.where(notifications.c.status.not_in(AT_LEAST[receipt.status]))
                            .values(**values)).rowcount == 1
    # A failed receipt is a refusal: a code the tables do not know is permanent, as a 4xx answer is.
    classification = classify(receipt.provider, 400, receipt.error_code)
    error = {"last_error_code": receipt.error_code, "last_error_class": str(classification.outcome),
             "last_error_text": receipt.error_text}
    kind = settings.types.get(row.message_type)
    if classification.outcome == Outcome.TEMPORARY and row.attempts < row.max_attempts and kind is not None \
            and not kind.sensitive:
        delay = retry_delay(settings.backoff[kind.backoff], max(row.attempts, 1), rule=classification.rule)
        values = {**error, "status": "failed_retry", "next_attempt_at": now + timedelta(seconds=delay),
                  "updated_at": now}
    else:
        values = {**common, **error, "status": "failed_final", "next_attempt_at": None}
    return conn.execute(mine.where(notifications.c.status.in_(FAILABLE)).values(**values)).rowcount == 1


def pending_count(engine: Engine, now: datetime | None = None) -> int:
    """Events waiting to be applied now (new ones, and orphans whose next try is due)."""
    now = now or now_utc()
    with read_transaction(engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(webhook_events).where(*_due(now))).scalar_one()


def _due(now: datetime) -> list:
    return [webhook_events.c.applied_at.is_(None),
            sa.or_(webhook_events.c.next_attempt_at.is_(None), webhook_events.c.next_attempt_at <= now)]


def apply_pending(engine: Engine, settings: NotificationSettings, *, now: datetime | None = None,
                  batch: int = BATCH) -> Applied:
    """Apply every due event, a batch per transaction, in the order received."""
    now = now or now_utc()
    window = timedelta(seconds=settings.reconcile_window_seconds)
    result = Applied()
    last_id = 0
    while True:
        with write_transaction(engine) as conn:
            events = conn.execute(sa.select(webhook_events).where(*_due(now), webhook_events.c.id > last_id)
                                  .order_by(webhook_events.c.id).limit(batch)).all()
            parsed = [_parse_event(event) for event in events]
            matches = _Matches(conn, [receipt for receipt in parsed if isinstance(receipt, Receipt)])
            for event, receipt in zip(events, parsed, strict=True):
                _apply_event(conn, settings, event, receipt, matches, now, window, result)
        if len(events) < batch:
            return result
        last_id = events[-1].id


def _parse_event(event: Any) -> Receipt | Exception | None:
    try:
        return parse(event.provider, event.dedupe_key, event.payload, utc(event.received_at))
    except (json.JSONDecodeError, AttributeError) as exc:
        return exc


def _apply_event(conn: Connection, settings: NotificationSettings, event: Any, receipt: Receipt | Exception | None,
                 matches: _Matches, now: datetime, window: timedelta, result: Applied) -> None:
    this = webhook_events.update().where(webhook_events.c.id == event.id, webhook_events.c.applied_at.is_(None))
    if isinstance(receipt, Exception):
        conn.execute(this.values(applied_at=now, outcome="invalid", error_text=str(receipt)[:500]))
        result.counts["ignored"] += 1
        return
    if receipt is None:
        outcome = "inbound" if ":message:" in event.dedupe_key else "ignored"
        conn.execute(this.values(applied_at=now, outcome=outcome))
        result.counts[outcome] += 1
        return
    row = matches.find(receipt)
    if row is None:
        if utc(event.received_at) + window <= now:
            conn.execute(this.values(applied_at=now, outcome="orphan", attempts=event.attempts + 1,
                                     error_text="no notification with this message id within the reconcile window"))
            result.counts["orphaned"] += 1
            result.orphans.append(receipt.message_id)
        else:
            conn.execute(this.values(attempts=event.attempts + 1, next_attempt_at=now + ORPHAN_RETRY))
            result.counts["orphan_waiting"] += 1
        return
    changed = _update(conn, settings, row, receipt, now)
    outcome = "applied" if changed else "stale"
    conn.execute(this.values(applied_at=now, outcome=outcome, notification_id=row.id, attempts=event.attempts + 1))
    result.counts[outcome] += 1
