"""The alert log: one row per alert raised, with a cooldown per alert key (kept in the database,
not in a process, so every worker and sensor tick sees the same cooldown).

Raising records a row; `dispatch` sends the rows not sent yet through the channels (SMTP email here,
others given by the caller), each row claimed by one dispatcher. When a condition clears,
`resolve_alert` marks its open rows resolved and records a recovery row (`<key>:recovered`), which is
sent like any other.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import advisory_lock_key, read_transaction, utc, write_transaction
from nightshift.db.schema import alerts

DEFAULT_COOLDOWN = timedelta(hours=1)
SEVERITIES = ("info", "warning", "critical")
RECOVERED = ":recovered"
# Unsent rows older than this are not sent any more (a dispatcher that was down does not flood the admin).
DISPATCH_MAX_AGE = timedelta(hours=24)


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
    _lock_key(conn, alert_key)
    earlier = sa.select(alerts.c.id).where(alerts.c.alert_key == alert_key)
    if since is not None:
        earlier = earlier.where(alerts.c.created_at > since)
    if conn.execute(earlier.limit(1)).first() is not None:
        return False
    conn.execute(
        alerts.insert().values(alert_key=alert_key, severity=severity, message=message, details=details, created_at=now)
    )
    return True


def _lock_key(conn: Connection, alert_key: str) -> None:
    """PostgreSQL: one transaction at a time decides about a key (two processes never both record it);
    SQLite's single writer already serialises."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_lock_key(f"alert:{alert_key}"))))


def resolve_alert(engine: Engine, alert_key: str, message: str, *, now: datetime | None = None) -> bool:
    """The condition behind `alert_key` cleared: its open rows are resolved and one recovery row is
    recorded. False (nothing written) when no row of the key was open."""
    now = now or datetime.now(UTC)
    with write_transaction(engine) as conn:
        _lock_key(conn, alert_key)
        resolved = conn.execute(alerts.update().where(alerts.c.alert_key == alert_key, alerts.c.resolved_at.is_(None))
                                .values(resolved_at=now)).rowcount
        if not resolved:
            return False
        conn.execute(alerts.insert().values(alert_key=alert_key + RECOVERED, severity="info", message=message,
                                            created_at=now, resolved_at=now))
    return True


@dataclass(frozen=True)
class Alert:
    id: int
    alert_key: str
    severity: str
    message: str
    details: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None = None
    channels: str | None = None
    resolved_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {"id": self.id, "alert_key": self.alert_key, "severity": self.severity, "message": self.message,
                "details": self.details, "created_at": iso(self.created_at), "sent_at": iso(self.sent_at),
                "channels": self.channels, "resolved_at": iso(self.resolved_at)}

    @property
    def subject(self) -> str:
        label = "RECOVERED" if self.alert_key.endswith(RECOVERED) else self.severity.upper()
        return f"[nightshift] {label}: {self.message}"[:200]

    @property
    def text(self) -> str:
        lines = [self.message, "", f"key: {self.alert_key}", f"at: {self.created_at.isoformat()}"]
        lines += [f"{name}: {value}" for name, value in sorted((self.details or {}).items())]
        return "\n".join(lines)


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver the alert; raise on failure."""


@dataclass(frozen=True)
class EmailChannel:
    """SMTP (smtplib): STARTTLS when asked, login when a user is given."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 10.0
    name: str = "email"

    def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = alert.subject, self.sender, ", ".join(self.recipients)
        message.set_content(alert.text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(message)


def _alert(row: Any) -> Alert:
    return Alert(row.id, row.alert_key, row.severity, row.message, row.details, utc(row.created_at), utc(row.sent_at),
                 row.channels, utc(row.resolved_at))


def dispatch(engine: Engine, channels: Sequence[Channel], *, now: datetime | None = None,
             max_age: timedelta = DISPATCH_MAX_AGE) -> list[dict[str, Any]]:
    """Send every alert row not sent yet (recorded within `max_age`) through each channel. A row is
    claimed (sent_at set) before sending, so two dispatchers never send it twice; `channels` records
    which channels took it (`name!` for one that failed). Returns what was sent. Without a channel nothing
    is claimed: the rows wait for one to be configured."""
    if not channels:
        return []
    now = now or datetime.now(UTC)
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(alerts).where(alerts.c.sent_at.is_(None), alerts.c.created_at >= now - max_age)
                            .order_by(alerts.c.id)).all()
    sent = []
    for row in rows:
        outcomes = deliver(engine, row.id, channels, now=now)
        if outcomes is not None:
            sent.append({"id": row.id, "alert_key": row.alert_key, "channels": outcomes})
    return sent


def deliver(engine: Engine, alert_id: int, channels: Sequence[Channel], *,
            now: datetime | None = None) -> list[str] | None:
    """Claim one unsent alert row and send it through the channels; None when another dispatcher had it."""
    now = now or datetime.now(UTC)
    with write_transaction(engine) as conn:
        claimed = conn.execute(alerts.update().where(alerts.c.id == alert_id, alerts.c.sent_at.is_(None))
                               .values(sent_at=now, channels="")).rowcount
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
    if not claimed:
        return None
    alert, outcomes, errors = _alert(row), [], {}
    for channel in channels:
        try:
            channel.send(alert)
            outcomes.append(channel.name)
        except Exception as exc:  # noqa: BLE001 - one channel down must not stop the others
            outcomes.append(f"{channel.name}!")
            errors[channel.name] = f"{type(exc).__name__}: {exc}"[:300]
    values: dict[str, Any] = {"channels": ",".join(outcomes)[:100]}
    if errors:
        values["details"] = {**(row.details or {}), "delivery_errors": errors}
    with write_transaction(engine) as conn:
        conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))
    return outcomes


def list_alerts(engine: Engine, *, since: datetime | None = None, limit: int = 1000) -> list[Alert]:
    query = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(alerts.c.created_at >= since)
    with read_transaction(engine) as conn:
        return [_alert(row) for row in conn.execute(query)]
