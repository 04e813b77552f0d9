"""The token ledger on SQLite and PostgreSQL: reservations that always end once, the period they pin,
the grace window, expiry, top-ups, thresholds and the reconciliation of the cache."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from nightshift.db.schema import alerts, token_ledger, token_periods
from nightshift.quotas import InsufficientTokens, QuotaError
from nightshift.quotas.accounts import Rollover, add_account, deactivate
from nightshift.quotas.balances import drifts, entries, repair, status
from nightshift.quotas.periods import open_month

KINSHASA = ZoneInfo("Africa/Kinshasa")  # UTC+1 all year
BAMAKO = ZoneInfo("Africa/Bamako")  # UTC+0
MID_OCTOBER = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
OCTOBER, NOVEMBER = date(2026, 10, 1), date(2026, 11, 1)


def balance(db, account: str, month: date = OCTOBER) -> dict:
    [row] = status(db, month, account)
    return {key: row[key] for key in ("granted", "used", "reserved", "remaining")}


def kinds(db, account: str) -> list[tuple[str, int]]:
    return [(entry["kind"], entry["tokens"]) for entry in entries(db, account)]


@pytest.fixture
def fox(db, make_ledger):
    add_account(db, "fox", 10_000)
    return make_ledger()


def test_reserve_holds_tokens_and_pins_the_current_month(db, fox):
    reservation = fox.reserve("fox", 1_500, "req-1", ttl_seconds=300, now=MID_OCTOBER)
    assert (reservation.account, reservation.tokens, reservation.period, reservation.remaining) == (
        "fox", 1_500, "2026-10", 8_500)
    assert reservation.expires_at == MID_OCTOBER + timedelta(seconds=300 + 60)
    assert balance(db, "fox") == {"granted": 10_000, "used": 0, "reserved": 1_500, "remaining": 8_500}
    # The month was opened on demand: its grant is in the ledger before the hold.
    assert kinds(db, "fox") == [("grant", 10_000), ("reserve", 1_500)]


def test_the_same_key_again_returns_the_same_reservation_without_a_second_hold(db, fox):
    first = fox.reserve("fox", 1_000, "req-1", now=MID_OCTOBER)
    again = fox.reserve("fox", 5_000, "req-1", now=MID_OCTOBER)
    assert (again.reservation_id, again.tokens, again.created, first.created) == (first.reservation_id, 1_000,
                                                                                   False, True)
    assert balance(db, "fox")["reserved"] == 1_000


def test_not_enough_tokens_raises_with_the_remaining_amount_and_writes_nothing(db, fox):
    fox.reserve("fox", 8_000, "big", now=MID_OCTOBER)
    with pytest.raises(InsufficientTokens, match="2,000 tokens left") as refused:
        fox.reserve("fox", 2_001, "more", now=MID_OCTOBER)
    assert (refused.value.remaining, refused.value.requested) == (2_000, 2_001)
    assert kinds(db, "fox") == [("grant", 10_000), ("reserve", 8_000)]
    assert fox.reserve("fox", 2_000, "exact", now=MID_OCTOBER).remaining == 0


@pytest.mark.parametrize("estimate", [None, 0, -5])
def test_a_request_without_an_estimate_is_refused_never_let_through_unmetered(db, fox, estimate):
    with pytest.raises(QuotaError, match="estimate is required"):
        fox.reserve("fox", estimate, "req", now=MID_OCTOBER)
    assert entries(db, "fox") == []


def test_a_worst_case_estimate_holds_at_most_the_cap_and_the_actual_is_settled_in_full(db, make_ledger):
    add_account(db, "fox", 100_000)
    capped = make_ledger(max_hold_tokens=8_000)
    reservation = capped.reserve("fox", 120_000, "worst-case", now=MID_OCTOBER)
    assert reservation.tokens == 8_000
    capped.settle(reservation.reservation_id, 9_500, now=MID_OCTOBER)
    assert balance(db, "fox") == {"granted": 100_000, "used": 9_500, "reserved": 0, "remaining": 90_500}


def test_settle_and_release_are_idempotent_and_exclusive(db, fox):
    settled = fox.reserve("fox", 1_000, "a", now=MID_OCTOBER)
    ending = fox.settle(settled.reservation_id, 1_200, now=MID_OCTOBER)
    assert (ending.kind, ending.tokens, ending.replayed) == ("settle", 1_200, False)
    assert fox.settle(settled.reservation_id, 1_200, now=MID_OCTOBER).replayed is True
    assert fox.settle(settled.reservation_id, 999, now=MID_OCTOBER).tokens == 1_200  # the first actual stands
    with pytest.raises(QuotaError, match="already settled"):
        fox.release(settled.reservation_id, now=MID_OCTOBER)

    released = fox.reserve("fox", 700, "b", now=MID_OCTOBER)
    assert fox.release(released.reservation_id, now=MID_OCTOBER).replayed is False
    assert fox.release(released.reservation_id, now=MID_OCTOBER).replayed is True
    with pytest.raises(QuotaError, match="already released"):
        fox.settle(released.reservation_id, 10, now=MID_OCTOBER)
    assert balance(db, "fox") == {"granted": 10_000, "used": 1_200, "reserved": 0, "remaining": 8_800}
    assert [kind for kind, _ in kinds(db, "fox")] == ["grant", "reserve", "settle", "reserve", "release"]


def test_an_unknown_outcome_is_settled_at_the_hold_and_flagged_estimated(db, fox):
    reservation = fox.reserve("fox", 2_000, "timeout", now=MID_OCTOBER)
    ending = fox.settle(reservation.reservation_id, None, now=MID_OCTOBER)
    assert (ending.kind, ending.tokens, ending.estimated) == ("settle", 2_000, True)
    assert entries(db, "fox")[-1]["estimated"] is True
    assert balance(db, "fox")["used"] == 2_000


def test_a_settle_after_the_month_ended_lands_in_the_month_reserved(db, fox):
    reservation = fox.reserve("fox", 1_000, "late", now=datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))
    fox.reserve("fox", 10, "november", now=datetime(2026, 11, 1, 0, 0, 1, tzinfo=UTC))
    fox.settle(reservation.reservation_id, 1_100, now=datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC))
    assert balance(db, "fox", OCTOBER) == {"granted": 10_000, "used": 1_100, "reserved": 0, "remaining": 8_900}
    assert balance(db, "fox", NOVEMBER)["used"] == 0


def test_a_settle_after_the_grace_window_is_refused_and_the_hold_stays(db, make_ledger):
    add_account(db, "fox", 10_000)
    fox = make_ledger(settle_grace_hours=48)
    reservation = fox.reserve("fox", 1_000, "late", ttl_seconds=30 * 86_400,
                              now=datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    with pytest.raises(QuotaError, match=r"period 2026-10 closed for settles at 2026-11-03T00:00:00\+00:00"):
        fox.settle(reservation.reservation_id, 900, now=datetime(2026, 11, 3, 0, 0, 1, tzinfo=UTC))
    assert balance(db, "fox") == {"granted": 10_000, "used": 0, "reserved": 1_000, "remaining": 9_000}
    assert fox.settle(reservation.reservation_id, 900, now=datetime(2026, 11, 2, 23, 59, tzinfo=UTC)).tokens == 900


@pytest.mark.parametrize("tz, month", [(KINSHASA, NOVEMBER), (BAMAKO, OCTOBER)])
def test_the_month_boundary_is_midnight_of_the_1st_in_the_service_time_zone(db, make_ledger, tz, month):
    add_account(db, "adha", 10_000)
    reservation = make_ledger(tz).reserve("adha", 100, "boundary", now=datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    assert reservation.period == month.strftime("%Y-%m")
    assert balance(db, "adha", month)["reserved"] == 100


def test_a_crashed_request_s_hold_expires_once_and_cannot_be_settled_after(db, fox):
    crashed = fox.reserve("fox", 3_000, "crashed", ttl_seconds=60, now=MID_OCTOBER)
    live = fox.reserve("fox", 1_000, "live", ttl_seconds=3_600, now=MID_OCTOBER)
    later = MID_OCTOBER + timedelta(minutes=5)
    assert fox.expire_holds(now=later) == (1, 3_000)
    assert fox.expire_holds(now=later) == (0, 0)
    assert balance(db, "fox")["reserved"] == 1_000
    with pytest.raises(QuotaError, match="already expired"):
        fox.settle(crashed.reservation_id, 3_000, now=later)
    assert fox.release(crashed.reservation_id, now=later).kind == "expire"  # gave the hold back already
    fox.settle(live.reservation_id, 800, now=later)
    assert [kind for kind, _ in kinds(db, "fox")] == ["grant", "reserve", "reserve", "expire", "settle"]


def test_expiry_works_in_batches(db, fox):
    for n in range(7):
        fox.reserve("fox", 10, f"r{n}", ttl_seconds=1, now=MID_OCTOBER)
    assert fox.expire_holds(now=MID_OCTOBER + timedelta(hours=1), batch_size=3) == (7, 70)
    assert balance(db, "fox")["reserved"] == 0


def test_a_top_up_is_a_grant_on_the_current_period_once_per_key(db, fox):
    fox.reserve("fox", 8_000, "big", now=MID_OCTOBER)
    topped = fox.grant("fox", 5_000, "support ticket 42", key="ticket-42", now=MID_OCTOBER)
    assert (topped["granted"], topped["remaining"], topped["period"]) == (True, 7_000, "2026-10")
    assert fox.grant("fox", 5_000, "support ticket 42", key="ticket-42", now=MID_OCTOBER)["granted"] is False
    assert balance(db, "fox")["granted"] == 15_000
    with pytest.raises(QuotaError, match="reason"):
        fox.grant("fox", 10, " ", now=MID_OCTOBER)


def test_an_inactive_or_unknown_account_gets_no_tokens(db, fox):
    deactivate(db, "fox")
    with pytest.raises(QuotaError, match="deactivated"):
        fox.reserve("fox", 10, "x", now=MID_OCTOBER)
    with pytest.raises(QuotaError, match="no account 'ghost'"):
        fox.reserve("ghost", 10, "x", now=MID_OCTOBER)


def test_80_and_100_percent_raise_one_alert_each_per_period(db, fox):
    def use(tokens: int, key: str) -> None:
        fox.settle(fox.reserve("fox", 100, key, now=MID_OCTOBER).reservation_id, tokens, now=MID_OCTOBER)

    for n, actual in enumerate([7_000, 1_500, 400, 1_100]):  # 70 %, 85 %, 89 %, 100 %
        use(actual, f"r{n}")
    fox.grant("fox", 5_000, "top-up", now=MID_OCTOBER)
    use(2_100, "after-top-up")  # 80.7 % of the new grant: the 80 % alert of this period was raised already
    with db.connect() as conn:
        raised = conn.execute(sa.select(alerts.c.alert_key, alerts.c.severity).order_by(alerts.c.id)).all()
    assert [tuple(row) for row in raised] == [("tokens:fox:2026-10:80", "warning"),
                                               ("tokens:fox:2026-10:100", "critical")]


def test_reconcile_finds_a_drift_injected_by_a_direct_update_and_repairs_it(db, fox):
    reservation = fox.reserve("fox", 1_000, "a", now=MID_OCTOBER)
    fox.settle(reservation.reservation_id, 400, now=MID_OCTOBER)
    fox.reserve("fox", 250, "b", now=MID_OCTOBER)
    assert drifts(db) == []
    with db.begin() as conn:
        conn.execute(token_periods.update().values(used=0, reserved=token_periods.c.reserved + 5))
    [drift] = drifts(db)
    assert (drift.account, drift.month, drift.differences) == ("fox", "2026-10", {"used": -400, "reserved": 5})
    assert [d.differences for d in repair(db)] == [{"used": -400, "reserved": 5}]
    assert drifts(db) == []
    assert balance(db, "fox") == {"granted": 10_000, "used": 400, "reserved": 250, "remaining": 9_350}


def test_resetting_while_reservations_are_open_loses_nothing(db, fox):
    reservation = fox.reserve("fox", 2_000, "open", now=MID_OCTOBER)
    fox.settle(fox.reserve("fox", 500, "done", now=MID_OCTOBER).reservation_id, 500, now=MID_OCTOBER)
    again = open_month(db, OCTOBER)
    assert (again.opened, again.already_open) == (0, 1)
    open_month(db, NOVEMBER)
    assert balance(db, "fox") == {"granted": 10_000, "used": 500, "reserved": 2_000, "remaining": 7_500}
    fox.settle(reservation.reservation_id, 2_100, now=MID_OCTOBER + timedelta(days=17))
    assert balance(db, "fox")["used"] == 2_600
    assert drifts(db) == []


def test_ledger_rows_are_never_rewritten_by_a_month_opening(db):
    add_account(db, "fox", 1_000, Rollover.parse("full"))
    open_month(db, OCTOBER)
    with db.connect() as conn:
        before = conn.execute(sa.select(token_ledger).order_by(token_ledger.c.id)).all()
    open_month(db, OCTOBER)
    open_month(db, OCTOBER, force_reason="support")
    with db.connect() as conn:
        after = conn.execute(sa.select(token_ledger).order_by(token_ledger.c.id)).all()
    assert after[: len(before)] == before
    assert [row.entry_kind for row in after[len(before):]] == ["adjust"]
