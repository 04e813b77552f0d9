"""The circuit breaker of each provider account, in the database so every process sees the same state.

closed → open at once on an `account` outcome, or when at least `failure_ratio` of at least
`min_attempts` attempts in the last window failed; open → half_open when a probe (which sends nothing)
succeeds; half_open → closed after `half_open_messages` sends, or back to open on a failure. While open,
the sweep leaves the account's notifications due and does not spend their attempts. Every change is a
row of provider_breaker_changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import notification_attempts, provider_breaker_changes, provider_breakers
from nightshift.notification_settings import BreakerSettings
from nightshift.notifications.outbox import as_utc

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FAILED_OUTCOMES = ("temporary", "ambiguous", "account")


@dataclass(frozen=True)
class BreakerState:
    account: str
    state: str
    open_until: datetime | None  # when an open breaker is probed next
    half_open_remaining: int


def states(engine: Engine, provider: str) -> dict[str, BreakerState]:
    columns = provider_breakers.c
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(columns.provider_account, columns.state, columns.open_until,
                                      columns.half_open_remaining).where(columns.provider == provider)).all()
    return {r.provider_account: BreakerState(r.provider_account, r.state, as_utc(r.open_until), r.half_open_remaining)
            for r in rows}


def _change(conn: Connection, provider: str, account: str, to_state: str, reason: str, now: datetime, *,
            settings: BreakerSettings, error_code: str | None = None) -> bool:
    """Move the account's breaker to `to_state` (recorded); False when it already was there."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(provider_breakers).values(provider=provider, provider_account=account,
                                                          state=CLOSED, updated_at=now)
                 .on_conflict_do_nothing(index_elements=["provider", "provider_account"]))
    where = (provider_breakers.c.provider == provider, provider_breakers.c.provider_account == account)
    current = conn.execute(sa.select(provider_breakers.c.state).where(*where).with_for_update()).scalar_one()
    if current == to_state:
        return False
    values: dict = {"state": to_state, "updated_at": now}
    if to_state == OPEN:
        values.update(opened_at=now, open_until=now + timedelta(seconds=settings.probe_interval_seconds),
                      half_open_remaining=0, last_error_code=error_code)
    elif to_state == HALF_OPEN:
        values.update(half_open_remaining=settings.half_open_messages)
    else:
        values.update(open_until=None, half_open_remaining=0, consecutive_failures=0)
    conn.execute(provider_breakers.update().where(*where).values(**values))
    conn.execute(provider_breaker_changes.insert().values(provider=provider, provider_account=account,
                                                          from_state=current, to_state=to_state, reason=reason,
                                                          created_at=now))
    return True


def open_breaker(conn: Connection, provider: str, account: str, reason: str, now: datetime, *,
                 settings: BreakerSettings, error_code: str | None = None) -> bool:
    return _change(conn, provider, account, OPEN, reason, now, settings=settings, error_code=error_code)


def record_outcomes(conn: Connection, provider: str, account: str, outcomes: list[str], now: datetime, *,
                    settings: BreakerSettings, account_error: str | None) -> None:
    """After a batch of an account's sends (inside the finalising transaction): open, close or count."""
    if account_error is not None:
        open_breaker(conn, provider, account, f"account error {account_error}", now, settings=settings,
                     error_code=account_error)
        return
    columns = provider_breakers.c
    row = conn.execute(sa.select(columns.state, columns.half_open_remaining).where(
        columns.provider == provider, columns.provider_account == account)).first()
    if row is not None and row.state == HALF_OPEN:
        if any(o in FAILED_OUTCOMES for o in outcomes):
            open_breaker(conn, provider, account, "a half-open send failed", now, settings=settings)
            return
        remaining = row.half_open_remaining - sum(o == "sent" for o in outcomes)
        if remaining <= 0:
            _change(conn, provider, account, CLOSED, "half-open sends succeeded", now, settings=settings)
        else:
            conn.execute(provider_breakers.update().where(
                columns.provider == provider, columns.provider_account == account).values(
                half_open_remaining=remaining, updated_at=now))
        return
    if not any(o in FAILED_OUTCOMES for o in outcomes):
        return
    attempts = notification_attempts.c
    since = now - timedelta(seconds=settings.window_seconds)
    total, failed = conn.execute(sa.select(
        sa.func.count(), sa.func.count().filter(attempts.outcome.in_(FAILED_OUTCOMES))).where(
        attempts.provider == provider, attempts.provider_account == account, attempts.started_at >= since)).one()
    if total >= settings.min_attempts and failed >= settings.failure_ratio * total:
        open_breaker(conn, provider, account, f"{failed} of {total} attempts failed in the last "
                     f"{settings.window_seconds // 60} min", now, settings=settings)


def probe_open(engine: Engine, provider: str, probe: Callable[[str], bool], now: datetime, *,
               settings: BreakerSettings) -> dict[str, str]:
    """Probe each open breaker whose probe is due (no transaction open during the probe); the new
    state of each probed account."""
    probed: dict[str, str] = {}
    for state in states(engine, provider).values():
        if state.state != OPEN or (state.open_until is not None and state.open_until > now):
            continue
        healthy = probe(state.account)
        with write_transaction(engine) as conn:
            if healthy:
                _change(conn, provider, state.account, HALF_OPEN, "probe succeeded", now, settings=settings)
            else:
                conn.execute(provider_breakers.update().where(
                    provider_breakers.c.provider == provider, provider_breakers.c.provider_account == state.account,
                    provider_breakers.c.state == OPEN).values(
                    open_until=now + timedelta(seconds=settings.probe_interval_seconds), updated_at=now))
        probed[state.account] = HALF_OPEN if healthy else OPEN
    return probed
