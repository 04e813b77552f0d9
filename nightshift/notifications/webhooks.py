"""Webhooks from the providers, as they arrive: signature checks, one stored event per status or inbound
message (with a dedupe key), nothing applied. The receipts job applies them later (receipts.py).

Meta signs the raw body (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256, key = app secret>`); WaChap does
not sign, so its URL carries a shared secret. Both are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import dialect_insert, write_transaction
from nightshift.db.schema import processed_messages, webhook_events
from nightshift.notifications.outbox import now_utc

# Inbound message ids are remembered this long (the old systems' idempotence keys): a redelivery within
# it is dropped even after its event row was pruned.
INBOUND_TTL = timedelta(days=7)
MAX_KEY = 200


class BadPayload(ValueError):
    """The body is not the JSON a provider sends."""


@dataclass(frozen=True)
class Event:
    provider: str
    dedupe_key: str
    payload: str  # the JSON of this status or message, as the provider sent it
    inbound_id: str | None = None  # set for an inbound message: remembered in processed_messages


def meta_signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def meta_signature(app_secret: str, body: bytes) -> str:
    """The header value Meta would send for `body` (for local senders and tests)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def secret_matches(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def _key(*parts: Any) -> str:
    key = ":".join(str(part) for part in parts)
    # Provider ids are short; a key that is not is hashed rather than cut (two cut keys could collide).
    return key if len(key) <= MAX_KEY else f"{parts[0]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from None


def _unrecognised(provider: str, body: bytes) -> Event:
    """A body with neither statuses nor messages is kept whole (the receipts job marks it ignored)."""
    return Event(provider, _key(provider, "body", hashlib.sha256(body).hexdigest()), body.decode("utf-8", "replace"))


def meta_events(body: bytes) -> list[Event]:
    """The statuses and inbound messages of a Meta webhook body (entry → changes → value)."""
    document = _decode(body)
    events: list[Event] = []
    entries = document.get("entry") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        for change in entry.get("changes") or [] if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            for status in value.get("statuses") or []:
                if isinstance(status, dict) and status.get("id") and status.get("status"):
                    events.append(Event("meta", _key("meta", "status", status["id"], status["status"]), _dump(status)))
            for message in value.get("messages") or []:
                if isinstance(message, dict) and message.get("id"):
                    events.append(Event("meta", _key("meta", "message", message["id"]), _dump(message),
                                        inbound_id=f"meta:{message['id']}"))
    return events or [_unrecognised("meta", body)]


def _wachap_items(document: Any) -> Iterable[dict[str, Any]]:
    items = document if isinstance(document, list) else [document]
    for item in items:
        if isinstance(item, dict):
            data = item.get("data")
            yield {**item, **data} if isinstance(data, dict) else item


def wachap_events(body: bytes) -> list[Event]:
    """WaChap posts one object (or a list) with `messageId` and `status` for a receipt, `messageId` and
    `from` for an inbound message, at the top or under `data`."""
    events: list[Event] = []
    for item in _wachap_items(_decode(body)):
        message_id = item.get("messageId") or item.get("id")
        if not message_id:
            continue
        if item.get("status"):
            events.append(Event("wachap", _key("wachap", "status", message_id, str(item["status"]).lower()),
                                _dump(item)))
        elif item.get("from"):
            events.append(Event("wachap", _key("wachap", "message", message_id), _dump(item),
                                inbound_id=f"wachap:{message_id}"))
    return events or [_unrecognised("wachap", body)]


def store(conn: Connection, events: list[Event], now: datetime | None = None) -> int:
    """Insert the events not seen before (unique dedupe key); an inbound message already remembered in
    processed_messages is dropped. Returns how many events were new."""
    now = now or now_utc()
    stored = 0
    for event in events:
        if event.inbound_id is not None:
            remembered = conn.execute(dialect_insert(conn, processed_messages).values(
                message_key=event.inbound_id, processed_at=now, expires_at=now + INBOUND_TTL)
                .on_conflict_do_nothing(index_elements=["message_key"]).returning(processed_messages.c.id)).first()
            if remembered is None:
                continue
        inserted = conn.execute(dialect_insert(conn, webhook_events).values(
            provider=event.provider, dedupe_key=event.dedupe_key, payload=event.payload, received_at=now)
            .on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(webhook_events.c.id)).first()
        stored += inserted is not None
    return stored


def receive(engine: Engine, events: list[Event]) -> int:
    with write_transaction(engine) as conn:
        return store(conn, events)
