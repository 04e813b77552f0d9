"""The alert log: one row per alert raised, with a cooldown per alert key (kept in the database,
not in a process, so every worker and sensor tick sees the same cooldown)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import write_transaction
from nightshift.db.schema import alerts

DEFAULT_COOLDOWN = timedelta(hours=1)
SEVERITIES = ("info", "warning", "critical")


def raise_alert(
    engine: Engine,
    alert_key: str,
    severity: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    cooldown: timedelta = DEFAULT_COOLDOWN,
    now: datetime | None = None,
) -> bool:
    """Record an alert unless one with the same key was recorded within the cooldown.

    Returns True when a new alert row was written.
    """
    now = now or datetime.now(UTC)
    with write_transaction(engine) as conn:
        return record_alert(conn, alert_key, severity, message, details, since=now - cooldown, now=now)


def record_alert(
    conn: Connection,
    alert_key: str,
    severity: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    since: datetime | None,
    now: datetime | None = None,
) -> bool:
    """Inside the caller's write transaction: record an alert unless one with the same key was recorded
    after `since` (None: ever, for alerts raised once per key). Returns True when a row was written."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    now = now or datetime.now(UTC)
    earlier = sa.select(alerts.c.id).where(alerts.c.alert_key == alert_key)
    if since is not None:
        earlier = earlier.where(alerts.c.created_at > since)
    if conn.execute(earlier.limit(1)).first() is not None:
        return False
    conn.execute(
        alerts.insert().values(alert_key=alert_key, severity=severity, message=message, details=details, created_at=now)
    )
    return True
