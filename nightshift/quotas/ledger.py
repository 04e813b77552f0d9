"""The token ledger: reservations that always end, and a period cache moved in the same transaction.

Every change is an append-only `token_ledger` row with a unique idempotency key, written in the same
transaction as the move of its period's `used` / `reserved` / `granted` cache. A reservation takes its
hold with one conditional UPDATE (`… WHERE granted - used - reserved >= hold`: the row lock on
PostgreSQL, the writer lock on SQLite, so concurrent holds never overshoot) and pins its period. It is
ended exactly once, by a settle, a release or an expiry, whose rows all share the key `end:<id>`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.alerts import record_alert
from nightshift.config import QuotaSettings
from nightshift.db.engine import read_transaction, utc, write_transaction
from nightshift.db.schema import accounts, token_ledger, token_periods
from nightshift.quotas.periods import (
    QuotaError,
    append_entry,
    lock_periods,
    month_end,
    month_of,
    month_text,
    open_periods,
)

# Shares of a period's grant whose use raises one alert per account, threshold and period.
ALERT_THRESHOLDS = (80, 100)
# The row that ended a reservation.
ENDED = token_ledger.alias("ended")


class InsufficientTokens(QuotaError):
    def __init__(self, account: str, requested: int, remaining: int):
        left = f"{remaining:,} tokens left" if remaining >= 0 else f"{-remaining:,} tokens over its grant"
        super().__init__(f"account {account!r}: {left} this month, {requested:,} asked; "
                         "wait for the next month or add tokens with `nightshift tokens grant`")
        self.account, self.requested, self.remaining = account, requested, remaining


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    account: str
    tokens: int
    period: str
    expires_at: datetime
    remaining: int
    created: bool  # False: the same key again, the first reservation returned

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "expires_at": self.expires_at.isoformat()}


@dataclass(frozen=True)
class Ending:
    """How a reservation ended: settle (tokens = the actual), release or expire (tokens = the hold)."""

    reservation_id: int
    kind: str
    tokens: int
    hold: int
    period: str
    estimated: bool
    replayed: bool  # the reservation had already ended this way: nothing changed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _EndedMeanwhile(Exception):
    """A concurrent transaction ended the reservation first: roll back, then report that ending."""


def _remaining() -> sa.ColumnElement:
    return token_periods.c.granted - token_periods.c.used - token_periods.c.reserved


# The statements of reserve and settle, built once: building them on every call cost more CPU than
# running them (BENCHMARKS.md, design measurements).
TAKE_HOLD = (
    token_periods.update()
    .where(token_periods.c.id == sa.bindparam("period_id"), _remaining() >= sa.bindparam("hold"))
    .values(reserved=token_periods.c.reserved + sa.bindparam("hold"), updated_at=sa.bindparam("now"))
    .returning(_remaining().label("remaining"))
)
END_HOLD = (
    token_periods.update().where(token_periods.c.id == sa.bindparam("period_id"))
    .values(reserved=token_periods.c.reserved - sa.bindparam("hold"), used=token_periods.c.used + sa.bindparam("used"),
            updated_at=sa.bindparam("now"))
    .returning(token_periods.c.granted, token_periods.c.used)
)


class TokenLedger:
    """The quotas API other domains use: reserve, settle, release, grant; expire for the scheduled job."""

    def __init__(self, engine: Engine, settings: QuotaSettings, tz: ZoneInfo):
        self.engine, self.settings, self.tz = engine, settings, tz

    def reserve(self, account: str, estimate: int | None, key: str, ttl_seconds: int | None = None,
                now: datetime | None = None, request_id: int | None = None) -> Reservation:
        """Hold min(estimate, max_hold_tokens) of `account`'s current month, or raise InsufficientTokens.
        No estimate is refused: a request is never let through unmetered. `request_id` (an ai_requests
        row) is recorded on the reservation and on the row that ends it."""
        if estimate is None or estimate <= 0:
            raise QuotaError(f"reservation {key!r}: a positive token estimate is required (prompt tokens + "
                             "max_tokens); without one the request would run unmetered")
        if not key or len(key) > 150:
            raise QuotaError("a reservation needs an idempotency key of 1 to 150 characters")
        ttl = self.settings.default_ttl_seconds if ttl_seconds is None else ttl_seconds
        if ttl <= 0:
            raise QuotaError(f"ttl {ttl}: a hold lasts a positive number of seconds")
        hold = min(estimate, self.settings.max_hold_tokens)
        now = now or datetime.now(UTC)
        ledger_key = f"reserve:{account}:{key}"
        month = month_of(now, self.tz)
        try:
            with write_transaction(self.engine) as conn:
                account_id, period_id = _period_of(conn, account, month)
                if period_id is None:  # the month's first request, before the 1st's scheduled opening ran
                    open_periods(conn, month, account_id)
                    account_id, period_id = _period_of(conn, account, month)
                held = conn.execute(TAKE_HOLD, {"period_id": period_id, "hold": hold, "now": now}).first()
                if held is None:
                    if (existing := self._reservation_by_key(conn, ledger_key)) is not None:
                        return existing
                    left = conn.execute(sa.select(_remaining()).where(token_periods.c.id == period_id)).scalar_one()
                    raise InsufficientTokens(account, hold, int(left))
                expires_at = now + timedelta(seconds=ttl + self.settings.hold_margin_seconds)
                reservation_id = append_entry(conn, account_id=account_id, period_id=period_id, entry_kind="reserve",
                                              tokens=hold, idempotency_key=ledger_key, expires_at=expires_at,
                                              request_id=request_id, created_at=now)
                if reservation_id is None:  # this key was reserved before: roll the new hold back
                    raise _EndedMeanwhile
                return Reservation(reservation_id, account, hold, month_text(month), expires_at, int(held.remaining),
                                   True)
        except _EndedMeanwhile:
            with read_transaction(self.engine) as conn:
                return self._reservation_by_key(conn, ledger_key)

    def settle(self, reservation_id: int, actual: int | None, now: datetime | None = None) -> Ending:
        """Charge the actual usage (even above the hold) to the period pinned at reserve time, during its
        month or the grace window after it. `actual=None` (outcome unknown: the provider may have billed)
        charges the hold, flagged estimated: never a release."""
        if actual is not None and actual < 0:
            raise QuotaError(f"reservation {reservation_id}: actual usage {actual} is negative")
        return self._end(reservation_id, "settle", actual, now or datetime.now(UTC))

    def release(self, reservation_id: int, now: datetime | None = None) -> Ending:
        """Give the hold back (the request did not run)."""
        return self._end(reservation_id, "release", None, now or datetime.now(UTC))

    def expire_holds(self, now: datetime | None = None, batch_size: int = 1_000) -> tuple[int, int]:
        """End every hold past its expires_at with an `expire` row, exactly once even beside a concurrent
        expiry or settle (the shared key end:<id>). Returns (holds expired, tokens returned)."""
        now = now or datetime.now(UTC)
        expired_total = tokens_total = 0
        while True:
            with write_transaction(self.engine) as conn:
                due = conn.execute(
                    sa.select(token_ledger.c.id, token_ledger.c.account_id, token_ledger.c.period_id,
                              token_ledger.c.tokens, token_ledger.c.request_id)
                    .where(token_ledger.c.entry_kind == "reserve", token_ledger.c.expires_at <= now,
                           ~sa.exists().where(ENDED.c.reservation_id == token_ledger.c.id))
                    .order_by(token_ledger.c.id).limit(batch_size)
                ).all()
                lock_periods(conn, [hold.period_id for hold in due])
                for hold in due:
                    if append_entry(conn, account_id=hold.account_id, period_id=hold.period_id,
                                    entry_kind="expire", tokens=hold.tokens, reservation_id=hold.id,
                                    request_id=hold.request_id, idempotency_key=f"end:{hold.id}",
                                    reason="hold expired", created_at=now) is not None:
                        conn.execute(token_periods.update().where(token_periods.c.id == hold.period_id)
                                     .values(reserved=token_periods.c.reserved - hold.tokens, updated_at=now))
                        expired_total += 1
                        tokens_total += hold.tokens
            if len(due) < batch_size:
                return expired_total, tokens_total

    def grant(self, account: str, tokens: int, reason: str, key: str | None = None,
              now: datetime | None = None) -> dict[str, Any]:
        """A top-up outside the cycle: a `grant` row on the account's current period. With `key`, the
        same top-up replayed grants once."""
        if tokens <= 0:
            raise QuotaError(f"grant of {tokens} tokens: a top-up is a positive number of tokens")
        if not reason.strip():
            raise QuotaError("a top-up needs a reason (--reason), kept in the ledger")
        now = now or datetime.now(UTC)
        month = month_of(now, self.tz)
        with write_transaction(self.engine) as conn:
            account_id, period_id = _period_of(conn, account, month)
            if period_id is None:
                open_periods(conn, month, account_id)
                account_id, period_id = _period_of(conn, account, month)
            lock_periods(conn, [period_id])
            ledger_key = f"topup:{account}:{key or uuid.uuid4()}"
            written = append_entry(conn, account_id=account_id, period_id=period_id, entry_kind="grant",
                                   tokens=tokens, idempotency_key=ledger_key, reason=reason.strip(),
                                   created_at=now) is not None
            if written:
                conn.execute(token_periods.update().where(token_periods.c.id == period_id)
                             .values(granted=token_periods.c.granted + tokens, updated_at=now))
            left = conn.execute(sa.select(_remaining()).where(token_periods.c.id == period_id)).scalar_one()
        return {"account": account, "tokens": tokens, "period": month_text(month), "granted": written,
                "remaining": int(left)}

    def _end(self, reservation_id: int, kind: str, actual: int | None, now: datetime) -> Ending:
        try:
            with write_transaction(self.engine) as conn:
                hold = _hold(conn, reservation_id)
                if hold.ended_kind is not None:
                    return _replayed(hold, kind)
                period = hold.period_start
                if kind == "settle":
                    deadline = month_end(period, self.tz) + timedelta(hours=self.settings.settle_grace_hours)
                    if now > deadline:
                        raise QuotaError(
                            f"reservation {reservation_id}: period {month_text(period)} closed for settles at "
                            f"{deadline.isoformat()} ({self.settings.settle_grace_hours} h after the month "
                            "ended); late usage is not charged to a closed month")
                tokens = hold.tokens if actual is None else actual
                estimated = kind == "settle" and actual is None
                used = tokens if kind == "settle" else 0
                moved = conn.execute(END_HOLD, {"period_id": hold.period_id, "hold": hold.tokens, "used": used,
                                                "now": now}).one()
                if append_entry(conn, account_id=hold.account_id, period_id=hold.period_id, entry_kind=kind,
                                tokens=tokens, reservation_id=reservation_id, request_id=hold.request_id,
                                idempotency_key=f"end:{reservation_id}", estimated=estimated, created_at=now) is None:
                    raise _EndedMeanwhile  # a concurrent ending won: roll this one's move back
                if used:
                    _alert_thresholds(conn, hold, used, moved.granted, moved.used, now)
                return Ending(reservation_id, kind, tokens, hold.tokens, month_text(period), estimated, False)
        except _EndedMeanwhile:
            with read_transaction(self.engine) as conn:
                return _replayed(_hold(conn, reservation_id), kind)

    def _reservation_by_key(self, conn: Connection, ledger_key: str, created: bool = False) -> Reservation | None:
        row = conn.execute(
            sa.select(token_ledger.c.id, token_ledger.c.tokens, token_ledger.c.expires_at, accounts.c.slug,
                      token_periods.c.period_start, _remaining().label("remaining"))
            .join(accounts, accounts.c.id == token_ledger.c.account_id)
            .join(token_periods, token_periods.c.id == token_ledger.c.period_id)
            .where(token_ledger.c.idempotency_key == ledger_key)
        ).first()
        if row is None:
            return None
        return Reservation(row.id, row.slug, row.tokens, month_text(row.period_start), utc(row.expires_at),
                           int(row.remaining), created)


PERIOD_OF = (
    sa.select(accounts.c.id, accounts.c.active, token_periods.c.id.label("period_id"))
    .select_from(accounts.outerjoin(token_periods, sa.and_(
        token_periods.c.account_id == accounts.c.id,
        token_periods.c.period_start == sa.bindparam("month", type_=sa.Date))))
    .where(accounts.c.slug == sa.bindparam("account"))
)


def _period_of(conn: Connection, account: str, month) -> tuple[int, int | None]:
    """The account's id and its period of `month` (None: not open yet); refuses an unknown or inactive account."""
    row = conn.execute(PERIOD_OF, {"account": account, "month": month}).first()
    if row is None:
        raise QuotaError(f"no account {account!r}: `nightshift accounts list` shows them")
    if not row.active:
        raise QuotaError(f"account {account!r} is deactivated: it gets no tokens")
    return row.id, row.period_id


HOLD = (
    sa.select(token_ledger.c.id, token_ledger.c.account_id, token_ledger.c.period_id, token_ledger.c.tokens,
              token_ledger.c.request_id, accounts.c.slug, token_periods.c.period_start,
              ENDED.c.entry_kind.label("ended_kind"), ENDED.c.tokens.label("ended_tokens"),
              ENDED.c.estimated.label("ended_estimated"), ENDED.c.created_at.label("ended_at"))
    .join(accounts, accounts.c.id == token_ledger.c.account_id)
    .join(token_periods, token_periods.c.id == token_ledger.c.period_id)
    .outerjoin(ENDED, ENDED.c.reservation_id == token_ledger.c.id)
    .where(token_ledger.c.id == sa.bindparam("reservation_id"), token_ledger.c.entry_kind == "reserve")
)


def _hold(conn: Connection, reservation_id: int) -> sa.Row:
    """A reserve row with its account, period and ending (ended_*: None while the hold is open)."""
    row = conn.execute(HOLD, {"reservation_id": reservation_id}).first()
    if row is None:
        raise QuotaError(f"no reservation {reservation_id}: `nightshift tokens ledger ACCOUNT` lists them")
    return row


def _replayed(hold: sa.Row, kind: str) -> Ending:
    """The reservation had already ended: the same ending again is a no-op; another one is refused,
    except a release after an expiry (both gave the hold back)."""
    if hold.ended_kind != kind and not (kind == "release" and hold.ended_kind == "expire"):
        done = {"settle": "settled", "release": "released", "expire": "expired (its hold went back)"}
        raise QuotaError(f"reservation {hold.id} was already {done[hold.ended_kind]} at "
                         f"{utc(hold.ended_at).isoformat()}; it cannot be {done[kind]} as well")
    return Ending(hold.id, hold.ended_kind, hold.ended_tokens, hold.tokens, month_text(hold.period_start),
                  bool(hold.ended_estimated), True)


def _alert_thresholds(conn: Connection, hold: sa.Row, used: int, granted: int, after: int, now: datetime) -> None:
    """One alert per account, threshold and period, raised by the settle that crosses it (settles of one
    period are serialised by its row, so exactly one sees the crossing)."""
    if granted <= 0:
        return
    before = after - used
    period = month_text(hold.period_start)
    for threshold in ALERT_THRESHOLDS:
        limit = granted * threshold / 100
        if before < limit <= after:
            record_alert(
                conn, f"tokens:{hold.slug}:{period}:{threshold}", "critical" if threshold >= 100 else "warning",
                f"account {hold.slug} used {threshold} % of its {granted:,} tokens for {period}",
                {"account": hold.slug, "period": period, "threshold_percent": threshold, "used": int(after),
                 "granted": int(granted)}, since=None, now=now)

