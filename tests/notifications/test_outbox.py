"""The outbox on SQLite and PostgreSQL: idempotent enqueue, phones, types and TTLs, routing, retry, cancel."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from nightshift.db.schema import notifications
from nightshift.notification_settings import NotificationSettings, ProviderAccount
from nightshift.notifications import outbox
from nightshift.notifications.outbox import NotificationError, enqueue

SETTINGS = NotificationSettings()
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def send(db, settings=SETTINGS, **request):
    request = {"source_app": "cargo", "to": "70 12 34 56", "body": "Votre colis est arrivé",
               "message_type": "colis_status", **request}
    return enqueue(db, settings, **request)


def row(db, notification_id):
    with db.connect() as conn:
        return conn.execute(sa.select(notifications).where(notifications.c.id == notification_id)).one()


def test_same_app_and_key_twice_is_one_notification(db):
    first = send(db, idempotency_key="order-17")
    again = send(db, idempotency_key="order-17", body="another text")
    other_app = send(db, source_app="chine", idempotency_key="order-17")
    assert first.created and not again.created and other_app.created
    assert again.id == first.id and other_app.id != first.id
    assert row(db, first.id).body == "Votre colis est arrivé"
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar() == 2


def test_without_a_key_each_call_is_a_message(db):
    assert send(db).id != send(db).id


def test_phone_normalised_by_the_shared_normaliser_invalid_refused(db):
    stored = row(db, send(db, to="00 223 70 12 34 56").id)
    assert stored.recipient == "+22370123456"
    with pytest.raises(NotificationError, match=r"to: 06123••678 is not a valid phone number for region ML"):
        send(db, to="0612345678")
    assert row(db, send(db, to="0612345678", region="FR").id).recipient == "+33612345678"


def test_types_priorities_and_ttls(db):
    otp = row(db, send(db, message_type="otp", priority=1, now=NOW).id)
    account = row(db, send(db, message_type="account", now=NOW).id)
    other = row(db, send(db, message_type="lot_status", now=NOW).id)
    custom = row(db, send(db, message_type="system", ttl=timedelta(minutes=3), max_attempts=2, now=NOW).id)
    assert outbox.as_utc(otp.expires_at) == NOW + timedelta(minutes=10)
    assert outbox.as_utc(account.expires_at) == NOW + timedelta(hours=24)
    assert outbox.as_utc(other.expires_at) == NOW + timedelta(hours=48)
    assert (outbox.as_utc(custom.expires_at), custom.max_attempts) == (NOW + timedelta(minutes=3), 2)
    assert (otp.priority, otp.status, otp.max_attempts) == (1, "pending", 10)
    with pytest.raises(NotificationError, match="message_type: 'promo' is not a known type"):
        send(db, message_type="promo")
    with pytest.raises(NotificationError, match="priority: 0 must be 1"):
        send(db, priority=0)
    with pytest.raises(NotificationError, match="body: the message is empty"):
        send(db, body="  ")


def test_routing_to_the_account_of_the_app_then_of_the_region(db):
    settings = NotificationSettings(accounts=(
        ProviderAccount("chine", regions=("CN",), phone_region="CN"),
        ProviderAccount("mali", source_apps=("agent-mali",), phone_region="ML"),
    ))
    assert row(db, send(db, settings, to="+8613812345678").id).provider_account == "chine"
    assert row(db, send(db, settings, source_app="agent-mali", to="+8613812345678").id).provider_account == "mali"
    assert row(db, send(db, settings, to="70 12 34 56").id).provider_account == "default"


def test_describe_masks_the_phone_and_hides_sensitive_bodies(db):
    shown = outbox.describe(row(db, send(db, message_type="otp", title="Code").id), SETTINGS)
    assert shown["to"] == "+2237••••456" and "title" not in shown and "body" not in shown
    assert shown["next_attempt_at"].endswith("+00:00")


def test_cancel_and_retry(db):
    first, second = send(db), send(db)
    assert outbox.cancel(db, SETTINGS, first.id) == 1
    assert outbox.cancel(db, SETTINGS, first.id) == 0
    assert row(db, first.id).status == "cancelled"
    with db.begin() as conn:
        conn.execute(notifications.update().where(notifications.c.id == second.id).values(
            status="failed_final", attempts=10, max_attempts=10, next_attempt_at=NOW))
    assert outbox.retry(db, notification_id=second.id) == 1
    retried = row(db, second.id)
    assert (retried.status, retried.attempts, retried.max_attempts) == ("failed_retry", 10, 11)
    assert outbox.retry(db, notification_id=first.id) == 0  # cancelled stays cancelled
