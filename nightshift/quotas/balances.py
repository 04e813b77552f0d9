"""What the periods and the ledger say: balances per account and month, ledger entries, and the
reconciliation of the period cache (granted, used, reserved) against the ledger it is a cache of."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, utc, write_transaction
from nightshift.db.schema import accounts, token_ledger, token_periods
from nightshift.quotas.periods import QuotaError, month_text

CACHED = ("granted", "used", "reserved")


def _require_account(conn: Connection, account: str) -> None:
    if conn.execute(sa.select(accounts.c.id).where(accounts.c.slug == account)).first() is None:
        raise QuotaError(f"no account {account!r}: `nightshift accounts list` shows them")


def status(engine: Engine, month: date, account: str | None = None) -> list[dict[str, Any]]:
    """Quota, granted, used, reserved and remaining of each account's period for `month`."""
    query = (
        sa.select(accounts.c.slug, accounts.c.active, token_periods.c.quota, token_periods.c.granted,
                  token_periods.c.used, token_periods.c.reserved)
        .join(accounts, accounts.c.id == token_periods.c.account_id)
        .where(token_periods.c.period_start == month)
        .order_by(accounts.c.slug)
    )
    with read_transaction(engine) as conn:
        if account is not None:
            _require_account(conn, account)
            query = query.where(accounts.c.slug == account)
        rows = conn.execute(query).all()
    return [{"account": row.slug, "month": month_text(month), "quota": row.quota, "granted": row.granted,
             "used": row.used, "reserved": row.reserved, "remaining": row.granted - row.used - row.reserved,
             "active": bool(row.active)} for row in rows]


def entries(engine: Engine, account: str, month: date | None = None) -> list[dict[str, Any]]:
    """The ledger rows of `account` (of one month), oldest first."""
    query = (
        sa.select(token_ledger, token_periods.c.period_start)
        .join(token_periods, token_periods.c.id == token_ledger.c.period_id)
        .join(accounts, accounts.c.id == token_ledger.c.account_id)
        .where(accounts.c.slug == account)
        .order_by(token_ledger.c.id)
    )
    if month is not None:
        query = query.where(token_periods.c.period_start == month)
    with read_transaction(engine) as conn:
        _require_account(conn, account)
        rows = conn.execute(query).all()
    return [{"id": row.id, "period": month_text(row.period_start), "kind": row.entry_kind, "tokens": row.tokens,
             "key": row.idempotency_key, "reservation_id": row.reservation_id, "estimated": bool(row.estimated),
             "expires_at": _iso(row.expires_at), "reason": row.reason, "created_at": _iso(row.created_at)}
            for row in rows]


def _iso(moment) -> str | None:
    return utc(moment).isoformat() if moment is not None else None


@dataclass(frozen=True)
class Drift:
    """A period whose cache differs from its ledger: the cached and the ledger's value of each counter."""

    account: str
    month: str
    cached: dict[str, int]
    ledger: dict[str, int]

    @property
    def differences(self) -> dict[str, int]:
        return {name: self.cached[name] - self.ledger[name]
                for name in CACHED if self.cached[name] != self.ledger[name]}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "differences": self.differences}


def _from_ledger() -> sa.Select:
    """Every period with its cache and the same three counters summed from the ledger."""
    sums = (
        sa.select(
            token_ledger.c.period_id,
            sa.func.sum(sa.case((token_ledger.c.entry_kind.in_(("grant", "adjust")), token_ledger.c.tokens),
                                else_=0)).label("granted"),
            sa.func.sum(sa.case((token_ledger.c.entry_kind == "settle", token_ledger.c.tokens), else_=0)).label("used"),
        )
        .group_by(token_ledger.c.period_id)
        .subquery("sums")
    )
    ended = token_ledger.alias("ended")
    holds = (
        sa.select(token_ledger.c.period_id, sa.func.sum(token_ledger.c.tokens).label("reserved"))
        .where(token_ledger.c.entry_kind == "reserve", ~sa.exists().where(ended.c.reservation_id == token_ledger.c.id))
        .group_by(token_ledger.c.period_id)
        .subquery("holds")
    )
    return (
        sa.select(token_periods.c.id, accounts.c.slug, token_periods.c.period_start, token_periods.c.granted,
                  token_periods.c.used, token_periods.c.reserved,
                  sa.func.coalesce(sums.c.granted, 0).label("ledger_granted"),
                  sa.func.coalesce(sums.c.used, 0).label("ledger_used"),
                  sa.func.coalesce(holds.c.reserved, 0).label("ledger_reserved"))
        .select_from(token_periods.join(accounts, accounts.c.id == token_periods.c.account_id)
                     .outerjoin(sums, sums.c.period_id == token_periods.c.id)
                     .outerjoin(holds, holds.c.period_id == token_periods.c.id))
    )


def _drifted(query: sa.Select) -> sa.Select:
    columns = query.selected_columns
    return query.where(sa.or_(*(columns[name] != columns[f"ledger_{name}"] for name in CACHED)))


def _drift(row: sa.Row) -> Drift:
    return Drift(row.slug, month_text(row.period_start), {name: int(row._mapping[name]) for name in CACHED},
                 {name: int(row._mapping[f"ledger_{name}"]) for name in CACHED})


def drifts(engine: Engine) -> list[Drift]:
    """Periods whose cached granted / used / reserved differ from the ledger (one consistent read)."""
    with read_transaction(engine) as conn:
        rows = conn.execute(_drifted(_from_ledger()).order_by(accounts.c.slug, token_periods.c.period_start)).all()
    return [_drift(row) for row in rows]


def repair(engine: Engine) -> list[Drift]:
    """Set the drifted periods' cache to what the ledger says; returns the drifts it repaired. The period
    rows are locked first (PostgreSQL), so no reservation moves them between the sum and the write."""
    with write_transaction(engine) as conn:
        found = [row.id for row in conn.execute(_drifted(_from_ledger())).all()]
        if not found:
            return []
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(token_periods.c.id).where(token_periods.c.id.in_(found)).with_for_update())
        rows = conn.execute(_drifted(_from_ledger()).where(token_periods.c.id.in_(found))).all()
        for row in rows:
            conn.execute(token_periods.update().where(token_periods.c.id == row.id).values(
                granted=row.ledger_granted, used=row.ledger_used, reserved=row.ledger_reserved,
                updated_at=sa.func.current_timestamp()))
        return [_drift(row) for row in rows]
