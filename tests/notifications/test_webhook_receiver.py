"""The webhook receiver over real HTTP: signatures, limits, storage with dedupe, inbound ids remembered."""

import json
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.schema import processed_messages, webhook_events
from tests.notifications.live_receiver import VERIFY_TOKEN, LiveReceiver, meta_body, meta_status


@pytest.fixture
def receiver(db: Engine) -> Iterator[LiveReceiver]:
    live = LiveReceiver(db, max_bytes=4096)
    yield live
    live.close()


def events(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(webhook_events).order_by(webhook_events.c.id)).all()


def test_meta_verification_handshake(receiver: LiveReceiver) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    answer = requests.get(f"{receiver.url}/webhooks/meta", params=params, timeout=5)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    wrong = requests.get(f"{receiver.url}/webhooks/meta", params={**params, "hub.verify_token": "nope"}, timeout=5)
    assert wrong.status_code == 403


def test_bad_or_missing_signature_is_refused_and_nothing_stored(db: Engine, receiver: LiveReceiver) -> None:
    body = meta_body(meta_status("wamid.1", "delivered"))
    assert receiver.post_meta(body, secret="someone-else").status_code == 401
    assert receiver.post_meta(body, signature="").status_code == 401
    assert receiver.post_meta(body, signature="sha256=" + "0" * 64).status_code == 401
    assert events(db) == []


def test_good_signature_stores_each_status_once(db: Engine, receiver: LiveReceiver) -> None:
    body = meta_body(meta_status("wamid.1", "sent", notification_id=7), meta_status("wamid.1", "delivered"))
    answer = receiver.post_meta(body)
    assert answer.status_code == 200
    assert answer.json() == {"events": 2, "stored": 2}
    assert answer.elapsed.total_seconds() < 0.2
    replay = receiver.post_meta(body)
    assert (replay.status_code, replay.json()) == (200, {"events": 2, "stored": 0})
    rows = events(db)
    assert [row.dedupe_key for row in rows] == ["meta:status:wamid.1:sent", "meta:status:wamid.1:delivered"]
    assert json.loads(rows[0].payload)["biz_opaque_callback_data"] == "7"
    assert all(row.applied_at is None and row.provider == "meta" for row in rows)


def test_size_and_content_type_limits(db: Engine, receiver: LiveReceiver) -> None:
    big = meta_body(*[meta_status(f"wamid.{n}", "delivered") for n in range(100)])
    assert receiver.post_meta(big).status_code == 413
    plain = requests.post(f"{receiver.url}/webhooks/meta", data=b"{}", headers={"Content-Type": "text/plain"},
                          timeout=5)
    assert plain.status_code == 415
    assert receiver.post_meta("not an object").status_code == 200  # kept whole: the receipts job ignores it
    garbage = requests.post(f"{receiver.url}/webhooks/wachap/wachap-hook-secret-654", data=b"{nope",
                            headers={"Content-Type": "application/json"}, timeout=5)
    assert garbage.status_code == 400
    assert [row.dedupe_key.split(":")[1] for row in events(db)] == ["body"]


def test_wachap_needs_its_shared_secret(db: Engine, receiver: LiveReceiver) -> None:
    receipt = {"event": "message.status", "data": {"messageId": "wachap-1", "status": "DELIVERED"}}
    assert receiver.post_wachap(receipt, secret="guessed").status_code == 401
    answer = receiver.post_wachap(receipt)
    assert (answer.status_code, answer.json()) == (200, {"events": 1, "stored": 1})
    assert [row.dedupe_key for row in events(db)] == ["wachap:status:wachap-1:delivered"]


def test_inbound_message_ids_are_remembered_seven_days(db: Engine, receiver: LiveReceiver) -> None:
    inbound = meta_body(messages=[{"id": "wamid.in.1", "from": "22370123456", "type": "text",
                                   "text": {"body": "Bonjour"}}])
    assert receiver.post_meta(inbound).json() == {"events": 1, "stored": 1}
    with db.begin() as conn:
        conn.execute(webhook_events.delete())  # pruned: the remembered id still drops a redelivery
    assert receiver.post_meta(inbound).json() == {"events": 1, "stored": 0}
    with db.connect() as conn:
        kept = conn.execute(sa.select(processed_messages)).one()
    assert kept.message_key == "meta:wamid.in.1"
    assert 6.9 < (kept.expires_at - kept.processed_at).total_seconds() / 86400 < 7.1
