"""The welcome message to clients an import created, through the outbox (opt-in per account).

Keyed by account and phone, so a re-import never sends it twice; it is enqueued inside the import's
merge transaction, so a rolled-back import enqueues nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nightshift.db.schema import accounts, clients, imports
from nightshift.notification_settings import WELCOME_FIELDS, NotificationSettings
from nightshift.notifications.outbox import NotificationError, enqueue_rows, prepare


def enqueue_welcome(conn: Connection, settings: NotificationSettings, client_ids: list[int],
                    import_id: int | None) -> int:
    """Welcome messages for the new clients of an import whose account opted in; how many were new."""
    if import_id is None or not client_ids or not settings.welcome:
        return 0
    slug = conn.execute(sa.select(accounts.c.slug).select_from(imports.join(accounts))
                        .where(imports.c.id == import_id)).scalar()
    message = settings.welcome.get(slug) if slug else None
    if message is None:
        return 0
    rows = []
    for start in range(0, len(client_ids), 500):
        found = conn.execute(sa.select(clients.c.id, clients.c.phone, clients.c.first_name, clients.c.last_name)
                             .where(clients.c.id.in_(client_ids[start:start + 500]))).all()
        for client in found:
            fields = dict.fromkeys(WELCOME_FIELDS, "")
            fields.update(first_name=client.first_name or "", last_name=client.last_name or "", account=slug)
            try:
                rows.append(prepare(settings, source_app=message.source_app, to=client.phone,
                                    body=message.template.format_map(fields).strip(),
                                    message_type=message.message_type, client_id=client.id,
                                    idempotency_key=f"welcome:{slug}:{client.phone}"))
            except NotificationError:
                continue  # an empty rendered body: nothing to send to this client
    return enqueue_rows(conn, rows)


def welcome_hook(settings: NotificationSettings) -> Callable[[Connection, list[int], int | None], None]:
    """The new-client hook of the imports, bound to these settings."""
    def welcome_new_clients(conn: Connection, client_ids: list[int], import_id: int | None) -> None:
        enqueue_welcome(conn, settings, client_ids, import_id)

    return welcome_new_clients
