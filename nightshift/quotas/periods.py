"""Monthly token periods: months in the service's time zone, and opening a month for every account.

Opening month M writes, in one transaction, the period rows of the active accounts that have none yet
(`INSERT … SELECT … ON CONFLICT DO NOTHING`) and their `grant` ledger rows (`grant:<account>:<M>`, plus
`rollover:<account>:<M>` for carried tokens). The unique keys make a second opening, or two at once (a
CLI reset beside the scheduled one), the same as one. A period already open is never written, so usage
recorded around midnight of the 1st is never erased; a forced re-grant adds an `adjust` row.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import dialect_insert, insert_of, read_transaction, write_transaction
from nightshift.db.schema import accounts, token_ledger, token_periods

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class QuotaError(ValueError):
    """A token operation refused: the message says why and what to do."""


def parse_month(text: str) -> date:
    match = MONTH.fullmatch(text.strip())
    if not match:
        raise QuotaError(f"month {text!r}: write it YYYY-MM, e.g. 2026-10")
    return date(int(match[1]), int(match[2]), 1)


def month_text(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def month_of(moment: datetime, tz: ZoneInfo) -> date:
    """The first day of the month `moment` falls in, in the service's time zone (not UTC)."""
    return moment.astimezone(tz).date().replace(day=1)


def period_of(text: str | None, tz: ZoneInfo, now: datetime | None = None) -> date:
    """A --month option, defaulting to the current month in the service's time zone."""
    return parse_month(text) if text else month_of(now or datetime.now(UTC), tz)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def month_end(month: date, tz: ZoneInfo) -> datetime:
    """The instant month `month` ends: midnight of the next month's 1st in `tz`, as UTC."""
    following = next_month(month)
    return datetime(following.year, following.month, 1, tzinfo=tz).astimezone(UTC)


def lock_periods(conn: Connection, period_ids: list[int]) -> None:
    """Lock period rows in id order (PostgreSQL; SQLite's writer lock covers it). Every ledger writer takes
    its periods before any idempotency key, so a settle and an expiry of one hold never deadlock."""
    if conn.dialect.name == "postgresql" and period_ids:
        conn.execute(sa.select(token_periods.c.id).where(token_periods.c.id.in_(sorted(set(period_ids))))
                     .order_by(token_periods.c.id).with_for_update())


def append_entry(conn: Connection, **row: Any) -> int | None:
    """Append one ledger row unless its idempotency key exists (also one a concurrent transaction is
    committing: PostgreSQL waits for it). Returns the new row's id, None for an existing key. The caller
    holds its period's lock (its UPDATE, or lock_periods) and moves the period's cache with it."""
    return conn.execute(_append_statement(conn.dialect.name), row).scalar()


@functools.cache
def _append_statement(dialect: str) -> sa.Insert:
    statement = insert_of(dialect)(token_ledger).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return statement.returning(token_ledger.c.id)


def _key(prefix: str, month: date) -> sa.ColumnElement:
    return sa.literal(f"{prefix}:", sa.String) + accounts.c.slug + sa.literal(f":{month_text(month)}", sa.String)


def _carried(remaining: sa.ColumnElement) -> sa.ColumnElement:
    """Tokens a period brings into the next one, by the account's rollover policy; overage never carries."""
    left = sa.case((remaining > 0, remaining), else_=0)
    cap = sa.cast(sa.func.substr(accounts.c.rollover, 8), sa.BigInteger)
    return sa.case(
        (accounts.c.rollover == "full", left),
        (accounts.c.rollover.like("capped:%"), sa.case((left < cap, left), else_=cap)),
        else_=0,
    )


def _to_open(month: date, account_id: int | None) -> sa.Select:
    """Active accounts without a period for `month`: account, quota, tokens carried from the month before."""
    before = token_periods.alias("before")
    carried = sa.func.coalesce(_carried(before.c.granted - before.c.used - before.c.reserved), 0)
    query = (
        sa.select(accounts.c.id.label("account_id"), sa.literal(month, sa.Date).label("period_start"),
                  accounts.c.monthly_token_quota.label("quota"),
                  (accounts.c.monthly_token_quota + carried).label("granted"))
        .select_from(accounts.outerjoin(before, sa.and_(before.c.account_id == accounts.c.id,
                                                        before.c.period_start == previous_month(month))))
        .where(accounts.c.active, ~sa.exists().where(token_periods.c.account_id == accounts.c.id,
                                                     token_periods.c.period_start == month))
    )
    return query if account_id is None else query.where(accounts.c.id == account_id)


def _without_entries() -> sa.ColumnElement:
    """A period with no ledger row yet: one this transaction has just opened."""
    return ~sa.exists().where(token_ledger.c.account_id == token_periods.c.account_id,
                              token_ledger.c.period_id == token_periods.c.id)


@dataclass(frozen=True)
class MonthOpening:
    month: str
    dry_run: bool
    opened: int
    already_open: int
    granted: int  # tokens granted by this opening: monthly quotas plus rolled over
    rolled_over: int
    regranted: int  # tokens re-granted by --force (adjust rows)
    low_balance_accounts: int
    low_balance_sample: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_periods(conn: Connection, month: date, account_id: int | None = None) -> tuple[int, int, int]:
    """Open `month` for every active account without its period (or for one account), inside the caller's
    write transaction. Returns (periods opened, tokens granted, tokens rolled over)."""
    source = _to_open(month, account_id).where(sa.true())
    inserted = dialect_insert(conn, token_periods).from_select(
        ["account_id", "period_start", "quota", "granted"], source
    ).on_conflict_do_nothing(index_elements=["account_id", "period_start"])
    # SQLAlchemy keeps the row count of UPDATE and DELETE only, unless asked.
    opened = conn.execute(inserted.execution_options(preserve_rowcount=True)).rowcount
    if not opened:
        return 0, 0, 0
    fresh = [token_periods.c.period_start == month, _without_entries()]
    if account_id is not None:
        fresh.append(token_periods.c.account_id == account_id)
    granted, rolled_over = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(token_periods.c.granted), 0),
                  sa.func.coalesce(sa.func.sum(token_periods.c.granted - token_periods.c.quota), 0))
        .where(*fresh)
    ).one()
    periods = token_periods.join(accounts, accounts.c.id == token_periods.c.account_id)
    columns = ["account_id", "period_id", "entry_kind", "tokens", "idempotency_key", "reason"]
    grants = sa.select(token_periods.c.account_id, token_periods.c.id, sa.literal("grant", sa.String),
                       token_periods.c.quota, _key("grant", month), sa.literal("monthly quota", sa.String)
                       ).select_from(periods).where(*fresh)
    carried = sa.select(token_periods.c.account_id, token_periods.c.id, sa.literal("grant", sa.String),
                        token_periods.c.granted - token_periods.c.quota, _key("rollover", month),
                        sa.literal(f"rolled over from {month_text(previous_month(month))}", sa.String)
                        ).select_from(periods).where(*fresh, token_periods.c.granted > token_periods.c.quota)
    conn.execute(dialect_insert(conn, token_ledger).from_select(columns, sa.union_all(grants, carried))
                 .on_conflict_do_nothing(index_elements=["idempotency_key"]))
    return opened, int(granted), int(rolled_over)


def _regrant(conn: Connection, month: date, reason: str, now: datetime) -> int:
    """--force: each open period of `month` gets its quota again through an `adjust` row, keyed by the
    reason (the same forced reset replayed changes nothing; a new reason grants again)."""
    digest = hashlib.sha256(reason.encode()).hexdigest()[:12]
    periods = conn.execute(
        sa.select(token_periods.c.id, token_periods.c.account_id, token_periods.c.quota, accounts.c.slug)
        .join(accounts, accounts.c.id == token_periods.c.account_id)
        .where(token_periods.c.period_start == month, accounts.c.active, token_periods.c.quota > 0)
    ).all()
    total = 0
    for period in periods:
        lock_periods(conn, [period.id])
        written = append_entry(
            conn, account_id=period.account_id, period_id=period.id, entry_kind="adjust", tokens=period.quota,
            idempotency_key=f"regrant:{period.slug}:{month_text(month)}:{digest}", reason=f"forced reset: {reason}",
            created_at=now) is not None
        if written:
            conn.execute(token_periods.update().where(token_periods.c.id == period.id)
                         .values(granted=token_periods.c.granted + period.quota, updated_at=now))
            total += period.quota
    return total


def _low_balances(conn: Connection, month: date, threshold: int) -> tuple[int, list[str]]:
    remaining = token_periods.c.granted - token_periods.c.used - token_periods.c.reserved
    low = (sa.select(accounts.c.slug).join(accounts, accounts.c.id == token_periods.c.account_id)
           .where(token_periods.c.period_start == month, remaining < threshold))
    count = conn.execute(sa.select(sa.func.count()).select_from(low.subquery())).scalar_one()
    return count, list(conn.execute(low.order_by(remaining, accounts.c.slug).limit(20)).scalars())


def open_month(engine: Engine, month: date, *, dry_run: bool = False, force_reason: str | None = None,
               low_balance_tokens: int = 10_000, now: datetime | None = None) -> MonthOpening:
    """Open `month` for every active account; `dry_run` says what would be opened and writes nothing."""
    now = now or datetime.now(UTC)
    active = sa.select(sa.func.count()).select_from(accounts).where(accounts.c.active)
    if dry_run:
        with read_transaction(engine) as conn:
            plan = _to_open(month, None).subquery()
            opened, granted, carried = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(plan.c.granted), 0),
                sa.func.coalesce(sa.func.sum(plan.c.granted - plan.c.quota), 0))).one()
            regranted = 0
            if force_reason:
                regranted = conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(token_periods.c.quota), 0))
                    .join(accounts, accounts.c.id == token_periods.c.account_id)
                    .where(token_periods.c.period_start == month, accounts.c.active)).scalar_one()
            low, sample = _low_balances(conn, month, low_balance_tokens)
            return MonthOpening(month_text(month), True, opened, conn.execute(active).scalar_one() - opened,
                                int(granted), int(carried), int(regranted), low, sample)
    with write_transaction(engine) as conn:
        opened, granted, carried = open_periods(conn, month)
        regranted = _regrant(conn, month, force_reason, now) if force_reason else 0
        low, sample = _low_balances(conn, month, low_balance_tokens)
        return MonthOpening(month_text(month), False, opened, conn.execute(active).scalar_one() - opened,
                            granted, carried, regranted, low, sample)
