"""Opening a month on SQLite and PostgreSQL: once, for active accounts, with rollover, dry run and force."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from nightshift.db.schema import token_ledger, token_periods
from nightshift.quotas.accounts import Rollover, add_account, deactivate, set_quota
from nightshift.quotas.balances import drifts, entries, status
from nightshift.quotas.periods import (
    QuotaError,
    month_end,
    month_of,
    next_month,
    open_month,
    parse_month,
    previous_month,
)

SEPTEMBER, OCTOBER, NOVEMBER = date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)


def granted(db, account: str, month: date) -> int:
    [row] = status(db, month, account)
    return row["granted"]


def test_month_arithmetic_in_the_service_time_zone():
    assert parse_month("2026-10") == OCTOBER
    for bad in ("2026-13", "26-10", "2026/10", "octobre"):
        with pytest.raises(QuotaError, match="YYYY-MM"):
            parse_month(bad)
    assert (next_month(date(2026, 12, 1)), previous_month(date(2026, 1, 1))) == (date(2027, 1, 1), date(2025, 12, 1))
    assert month_end(OCTOBER, ZoneInfo("Africa/Kinshasa")) == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert month_of(datetime(2026, 10, 31, 23, 0, tzinfo=UTC), ZoneInfo("Africa/Kinshasa")) == NOVEMBER


def test_opening_a_month_grants_each_active_account_once(db):
    add_account(db, "fox", 200_000)
    add_account(db, "adha", 5_000)
    add_account(db, "old", 1_000)
    deactivate(db, "old")
    first = open_month(db, OCTOBER)
    assert (first.opened, first.already_open, first.granted, first.rolled_over) == (2, 0, 205_000, 0)
    assert (first.low_balance_accounts, first.low_balance_sample) == (1, ["adha"])
    again = open_month(db, OCTOBER)
    assert (again.opened, again.already_open, again.granted) == (0, 2, 0)
    assert [(e["kind"], e["tokens"], e["key"]) for e in entries(db, "fox")] == [
        ("grant", 200_000, "grant:fox:2026-10")]
    assert status(db, OCTOBER, "old") == []


def test_a_dry_run_says_what_would_be_opened_and_writes_nothing(db):
    add_account(db, "fox", 200_000)
    plan = open_month(db, OCTOBER, dry_run=True)
    assert (plan.dry_run, plan.opened, plan.granted) == (True, 1, 200_000)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_periods)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(token_ledger)).scalar_one() == 0


@pytest.mark.parametrize("policy, november, december", [
    ("none", 10_000, 10_000),      # unused tokens expire
    ("full", 16_000, 26_000),      # what Adha did: the allowance added to what was left
    ("capped:4000", 14_000, 14_000),
])
def test_rollover_across_two_months(db, make_ledger, policy, november, december):
    add_account(db, "fox", 10_000, Rollover.parse(policy))
    fox = make_ledger()
    open_month(db, OCTOBER)
    fox.settle(fox.reserve("fox", 4_000, "oct", now=datetime(2026, 10, 10, tzinfo=UTC)).reservation_id, 4_000,
               now=datetime(2026, 10, 10, tzinfo=UTC))
    opened = open_month(db, NOVEMBER)
    assert granted(db, "fox", NOVEMBER) == november
    assert opened.rolled_over == november - 10_000
    carried = [e for e in entries(db, "fox") if e["key"].startswith("rollover:")]
    assert [(e["key"], e["tokens"]) for e in carried] == ([("rollover:fox:2026-11", november - 10_000)]
                                                          if november > 10_000 else [])
    open_month(db, date(2026, 12, 1))
    assert granted(db, "fox", date(2026, 12, 1)) == december
    assert drifts(db) == []


def test_overage_never_carries(db, make_ledger):
    add_account(db, "fox", 1_000, Rollover.parse("full"))
    fox = make_ledger()
    now = datetime(2026, 10, 10, tzinfo=UTC)
    fox.settle(fox.reserve("fox", 1_000, "oct", now=now).reservation_id, 3_000, now=now)
    open_month(db, NOVEMBER)
    assert granted(db, "fox", NOVEMBER) == 1_000


def test_a_new_quota_applies_from_the_next_period_on(db):
    add_account(db, "fox", 1_000)
    open_month(db, OCTOBER)
    set_quota(db, "fox", 3_000)
    open_month(db, OCTOBER)
    open_month(db, NOVEMBER)
    assert (granted(db, "fox", OCTOBER), granted(db, "fox", NOVEMBER)) == (1_000, 3_000)


def test_force_regrants_through_an_adjust_row_with_its_reason_once_per_reason(db, make_ledger):
    add_account(db, "fox", 10_000)
    fox = make_ledger()
    now = datetime(2026, 10, 10, tzinfo=UTC)
    fox.settle(fox.reserve("fox", 6_000, "oct", now=now).reservation_id, 6_000, now=now)
    forced = open_month(db, OCTOBER, force_reason="customer gift")
    assert (forced.opened, forced.regranted) == (0, 10_000)
    assert open_month(db, OCTOBER, force_reason="customer gift").regranted == 0
    [row] = status(db, OCTOBER, "fox")
    assert (row["granted"], row["used"], row["remaining"]) == (20_000, 6_000, 14_000)  # usage is never erased
    [adjust] = [e for e in entries(db, "fox") if e["kind"] == "adjust"]
    assert (adjust["tokens"], adjust["reason"]) == (10_000, "forced reset: customer gift")
    assert open_month(db, OCTOBER, force_reason="second gift").regranted == 10_000
    assert drifts(db) == []


def test_a_month_opened_late_still_rolls_over_from_the_month_before(db):
    add_account(db, "fox", 1_000, Rollover.parse("full"))
    open_month(db, SEPTEMBER)
    open_month(db, OCTOBER)
    assert granted(db, "fox", OCTOBER) == 2_000
