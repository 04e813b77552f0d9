"""Concurrent reservations, settles and expiries on SQLite and PostgreSQL: holds never overshoot what
remains, and every reservation is ended exactly once."""

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from nightshift.config import QuotaSettings
from nightshift.db.engine import create_engine
from nightshift.db.schema import token_ledger
from nightshift.quotas import InsufficientTokens, QuotaError, TokenLedger
from nightshift.quotas.accounts import add_account
from nightshift.quotas.balances import drifts, status
from nightshift.quotas.periods import month_of

AVAILABLE, HOLD, REQUESTS = 20_000, 700, 50  # 50 × 700 = 35,000 asked of 20,000: 28 holds fit


def _reserve_all(url: str, keys: list[str], start, results) -> None:
    engine = create_engine(url)
    ledger = TokenLedger(engine, QuotaSettings(), ZoneInfo("UTC"))
    start.wait()
    for key in keys:
        try:
            results.append(ledger.reserve("fox", HOLD, key).tokens)
        except InsufficientTokens:
            results.append(0)
    engine.dispose()


def _assert_no_overshoot(db, held: list[int]) -> None:
    assert len(held) == REQUESTS
    assert sum(held) == (AVAILABLE // HOLD) * HOLD  # as many holds as fit, not one more
    [row] = status(db, month_of(datetime.now(UTC), ZoneInfo("UTC")), "fox")
    assert (row["reserved"], row["remaining"]) == (sum(held), AVAILABLE - sum(held))
    with db.connect() as conn:
        holds = conn.execute(sa.select(sa.func.count()).where(token_ledger.c.entry_kind == "reserve")).scalar_one()
    assert holds == AVAILABLE // HOLD
    assert drifts(db) == []


def test_50_threads_reserving_at_once_never_overshoot(db, db_url):
    add_account(db, "fox", AVAILABLE)
    start, held = threading.Barrier(REQUESTS), []
    threads = [threading.Thread(target=_reserve_all, args=(db_url, [f"t{n}"], start, held)) for n in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    _assert_no_overshoot(db, held)


def test_10_processes_reserving_at_once_never_overshoot(db, db_url):
    add_account(db, "fox", AVAILABLE)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start, held = manager.Barrier(10), manager.list()
        processes = [context.Process(target=_reserve_all, args=(db_url, [f"p{p}-{n}" for n in range(5)], start, held))
                     for p in range(10)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=180)
        assert [process.exitcode for process in processes] == [0] * 10
        _assert_no_overshoot(db, list(held))


def test_settles_racing_expiries_end_each_reservation_exactly_once(db, db_url):
    add_account(db, "fox", AVAILABLE)
    ledger = TokenLedger(db, QuotaSettings(), ZoneInfo("UTC"))
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    reservations = [ledger.reserve("fox", 100, f"r{n}", ttl_seconds=1, now=long_ago).reservation_id for n in range(30)]
    start = threading.Barrier(32)
    settled: list[int] = []

    def expire() -> None:
        start.wait()
        ledger.expire_holds()

    refused: list[str] = []
    workers = [threading.Thread(target=_settle_or_expired, args=(ledger, rid, start, settled, refused))
               for rid in reservations]
    workers += [threading.Thread(target=expire) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    with db.connect() as conn:
        ends = conn.execute(sa.select(token_ledger.c.reservation_id, sa.func.count())
                            .where(token_ledger.c.reservation_id.is_not(None))
                            .group_by(token_ledger.c.reservation_id)).all()
    # A settle is refused only because the expiry ended its hold first (an error in a thread fails nothing).
    assert all("already expired" in message for message in refused), refused
    assert len(settled) + len(refused) == len(reservations)
    assert sorted(rid for rid, _ in ends) == sorted(reservations) and {count for _, count in ends} == {1}
    [row] = status(db, month_of(long_ago, ZoneInfo("UTC")), "fox")
    assert (row["reserved"], row["used"]) == (0, sum(settled))
    assert drifts(db) == []


def _settle_or_expired(ledger: TokenLedger, reservation_id: int, start, settled: list[int],
                       refused: list[str]) -> None:
    """Settle, unless an expiry ended the hold first (then the settle is refused: the hold went back)."""
    start.wait()
    try:
        ending = ledger.settle(reservation_id, 150)
    except QuotaError as exc:
        refused.append(str(exc))
        return
    if ending.kind == "settle" and not ending.replayed:
        settled.append(ending.tokens)
