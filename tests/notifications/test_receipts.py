"""Delivery receipts posted to the real receiver, then applied, on SQLite and PostgreSQL: forward-only
statuses, unknown rows resolved, orphans retried then reported, replays, Meta's biz_opaque_callback_data."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.schema import notifications, webhook_events
from nightshift.notifications import receipts, sweep
from nightshift.notifications.outbox import enqueue, now_utc
from tests.notifications.fake_provider import fast_settings, meta_backend, wachap_backend
from tests.notifications.live_receiver import LiveReceiver, meta_body, meta_status

SETTINGS = fast_settings()


@pytest.fixture
def receiver(db: Engine) -> Iterator[LiveReceiver]:
    live = LiveReceiver(db)
    yield live
    live.close()


def send(db: Engine, **request) -> int:
    request = {"source_app": "cargo", "to": "70 12 34 56", "body": "Votre colis est arrivé",
               "message_type": "colis_status", **request}
    return enqueue(db, SETTINGS, **request).id


def row(db: Engine, notification_id: int):
    with db.connect() as conn:
        return conn.execute(sa.select(notifications).where(notifications.c.id == notification_id)).one()


def set_row(db: Engine, notification_id: int, **values) -> None:
    with db.begin() as conn:
        conn.execute(notifications.update().where(notifications.c.id == notification_id).values(**values))


def wachap_receipt(message_id: str, status: str) -> dict:
    return {"event": "message.status", "data": {"messageId": message_id, "status": status}}


def apply(db: Engine, **kwargs) -> dict:
    return receipts.apply_pending(db, SETTINGS, **kwargs).as_dict()


def test_statuses_only_move_forward(db, receiver, wachap_server):
    first, second = send(db), send(db, to="70 12 34 57")
    assert sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server)).as_dict()["sent"] == 2
    ids = {n: row(db, n).provider_message_id for n in (first, second)}
    receiver.post_wachap(wachap_receipt(ids[first], "delivered"))
    receiver.post_wachap(wachap_receipt(ids[second], "read"))
    assert apply(db)["applied"] == 2
    # Late, out of order: a "sent" after delivered, a "delivered" after read.
    receiver.post_wachap(wachap_receipt(ids[first], "sent"))
    receiver.post_wachap(wachap_receipt(ids[second], "delivered"))
    receiver.post_wachap(wachap_receipt(ids[second], "failed"))
    assert apply(db) | {"orphans": None} == {"applied": 0, "stale": 3, "orphan_waiting": 0, "orphaned": 0,
                                             "inbound": 0, "ignored": 0, "orphans": None}
    assert row(db, first).status == "delivered" and row(db, first).delivered_at is not None
    assert row(db, second).status == "read" and row(db, second).read_at is not None


def test_failed_applies_over_sent_only(db, receiver, meta_server):
    notification = send(db)
    sweep.run_sweep(db, SETTINGS, meta_backend(meta_server))
    sent = row(db, notification)
    receiver.post_meta(meta_body(meta_status(sent.provider_message_id, "failed", notification_id=notification,
                                             errors=[{"code": 131026, "title": "Message undeliverable"}])))
    assert apply(db)["applied"] == 1
    failed = row(db, notification)
    assert (failed.status, failed.last_error_code, failed.last_error_class) == ("failed_final", "131026", "permanent")


def test_unknown_is_resolved_by_a_late_receipt_and_never_sent_again(db, receiver, meta_server):
    notification = send(db)
    # The send timed out after the request left: unknown, waiting for a receipt.
    set_row(db, notification, status="unknown", attempts=1, provider="meta",
            next_attempt_at=now_utc() + timedelta(seconds=SETTINGS.reconcile_window_seconds))
    receiver.post_meta(meta_body(meta_status("wamid.late", "delivered", notification_id=notification)))
    assert apply(db)["applied"] == 1
    resolved = row(db, notification)
    assert (resolved.status, resolved.provider_message_id) == ("delivered", "wamid.late")
    later = now_utc() + timedelta(seconds=SETTINGS.reconcile_window_seconds + 5)
    assert sweep.reap(db, SETTINGS, now=later)["reconciled"] == 0
    sweep.run_sweep(db, SETTINGS, meta_backend(meta_server))
    assert meta_server.sends() == [] and row(db, notification).status == "delivered"


def test_meta_matches_a_row_still_being_sent_by_its_callback_data(db, receiver):
    notification = send(db)
    set_row(db, notification, status="sending", attempts=1, provider="meta")
    receiver.post_meta(meta_body(meta_status("wamid.fast", "sent", notification_id=notification)))
    assert apply(db)["applied"] == 1
    assert (row(db, notification).status, row(db, notification).provider_message_id) == ("sent", "wamid.fast")
    # A callback id whose row has another message id is not trusted: the message id decides (none here).
    receiver.post_meta(meta_body(meta_status("wamid.other", "read", notification_id=notification)))
    assert apply(db)["orphan_waiting"] == 1 and row(db, notification).status == "sent"


def test_orphan_applied_when_its_message_appears(db, receiver, wachap_server):
    notification = send(db)
    receiver.post_wachap(wachap_receipt("wachap-1", "delivered"))  # the id the provider will give
    assert apply(db)["orphan_waiting"] == 1
    assert receipts.pending_count(db) == 0  # not due again before its retry time
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    assert row(db, notification).provider_message_id == "wachap-1"
    retry_time = now_utc() + receipts.ORPHAN_RETRY + timedelta(seconds=1)
    assert receipts.pending_count(db, retry_time) == 1
    assert apply(db, now=retry_time)["applied"] == 1
    assert row(db, notification).status == "delivered"


def test_orphan_reported_after_the_reconcile_window(db, receiver):
    receiver.post_wachap(wachap_receipt("wachap-ghost", "read"))
    assert apply(db)["orphan_waiting"] == 1
    after_window = now_utc() + timedelta(seconds=SETTINGS.reconcile_window_seconds + 1)
    result = apply(db, now=after_window)
    assert (result["orphaned"], result["orphans"]) == (1, ["wachap-ghost"])
    with db.connect() as conn:
        event = conn.execute(sa.select(webhook_events)).one()
    assert (event.outcome, event.attempts) == ("orphan", 2) and event.applied_at is not None
    assert apply(db, now=after_window + timedelta(hours=1))["orphaned"] == 0


def test_replayed_events_change_nothing(db, receiver, meta_server):
    notification = send(db)
    sweep.run_sweep(db, SETTINGS, meta_backend(meta_server))
    body = meta_body(meta_status(row(db, notification).provider_message_id, "read", notification_id=notification))
    receiver.post_meta(body)
    assert apply(db)["applied"] == 1
    before = row(db, notification)
    assert receiver.post_meta(body).json()["stored"] == 0
    assert apply(db)["applied"] == 0 and row(db, notification) == before


def test_inbound_messages_are_marked_not_applied(db, receiver):
    receiver.post_meta(meta_body(messages=[{"id": "wamid.in.2", "from": "22370123456", "type": "text"}]))
    assert apply(db)["inbound"] == 1
