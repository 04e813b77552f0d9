"""Retention of the app tables on SQLite and PostgreSQL: ages at the boundary, the rows each policy must
not touch, the dependency guards, dry runs, batch sizes, stop and resume."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from nightshift.db.schema import (
    ai_requests,
    alerts,
    import_errors,
    imports,
    notification_attempts,
    notifications,
    processed_messages,
    token_ledger,
    webhook_events,
)
from nightshift.retention.cleanup import run_policies
from nightshift.retention.run import Run
from tests.retention import rows
from tests.retention.rows import NOW, clean

SECOND = timedelta(seconds=1)


def _policy_rows(engine, table_name, at):
    """One row the policy covers, aged `at`."""
    return {
        "processed_messages": lambda: rows.processed_message(engine, at),
        "ai_requests": lambda: rows.ai_request(engine, at, "completed"),
        "notification_attempts": lambda: rows.attempt(engine, rows.notification(engine, NOW, "pending"), at),
        "notifications": lambda: rows.notification(engine, at, "read"),
        "webhook_events": lambda: rows.webhook_event(engine, at, at),
        "alerts": lambda: rows.alert(engine, at),
        "imports": lambda: rows.import_row(engine, at),
    }[table_name]()


BOUNDARY_CASES = [
    ("processed_messages", processed_messages, timedelta(days=7)),
    ("ai_requests", ai_requests, timedelta(days=14)),
    ("notification_attempts", notification_attempts, timedelta(days=30)),
    ("notifications", notifications, timedelta(days=90)),
    ("webhook_events", webhook_events, timedelta(days=30)),
    ("alerts", alerts, timedelta(days=90)),
    ("imports", imports, timedelta(days=90)),
]


@pytest.mark.parametrize(("name", "table", "age"), BOUNDARY_CASES, ids=[c[0] for c in BOUNDARY_CASES])
def test_a_row_exactly_as_old_as_its_policy_is_kept_one_second_older_is_deleted(db, tmp_path, name, table, age):
    older = _policy_rows(db, name, NOW - age - SECOND)
    exact = _policy_rows(db, name, NOW - age)
    younger = _policy_rows(db, name, NOW - age + SECOND)
    report = clean(db, tmp_path, name)[name]
    assert rows.ids(db, table) == {exact, younger}
    assert (report.deleted, report.would_delete, report.remaining) == (1, 0, 2)
    assert report.oldest_remaining_age_s == age.total_seconds()
    assert older not in rows.ids(db, table)


def test_rows_not_in_a_final_state_are_untouched_whatever_their_age(db, tmp_path):
    ancient = NOW - timedelta(days=400)
    live_lease = NOW + timedelta(minutes=5)
    open_requests = {rows.ai_request(db, ancient, "processing", lease_until=live_lease)}
    open_notifications = {rows.notification(db, ancient, status)
                          for status in ("pending", "sending", "failed_retry", "unknown")}
    unapplied = {rows.webhook_event(db, ancient, None)}
    unfinished = {rows.import_row(db, ancient, status) for status in ("received", "running")}
    reports = clean(db, tmp_path)
    assert rows.ids(db, ai_requests) == open_requests
    assert rows.ids(db, notifications) == open_notifications
    assert rows.ids(db, webhook_events) == unapplied
    assert rows.ids(db, imports) == unfinished
    assert all(report.deleted == 0 for report in reports.values())


def test_abandoned_requests_turn_timeout_after_12_hours_unless_their_lease_still_runs(db, tmp_path):
    past = NOW - timedelta(hours=12) - SECOND
    abandoned_pending = rows.ai_request(db, past, "pending")
    abandoned_processing = rows.ai_request(db, past, "processing", lease_until=NOW - SECOND,
                                           claim_token="c0ffee")
    leased = rows.ai_request(db, past, "processing", lease_until=NOW + timedelta(minutes=1))
    exactly_12_hours = rows.ai_request(db, NOW - timedelta(hours=12), "pending")
    report = clean(db, tmp_path, "ai_requests_abandoned", "ai_requests")
    with db.connect() as conn:
        found = {r.id: r for r in conn.execute(sa.select(ai_requests))}
    assert set(found) == {abandoned_pending, abandoned_processing, leased, exactly_12_hours}  # none deleted
    for request_id in (abandoned_pending, abandoned_processing):
        assert (found[request_id].status, found[request_id].error_code) == ("timeout", "abandoned")
        assert found[request_id].lease_until is None and found[request_id].claim_token is None
    assert found[leased].status == "processing" and found[exactly_12_hours].status == "pending"
    assert report["ai_requests_abandoned"].deleted == 2
    assert report["ai_requests_abandoned"].remaining == 2
    assert report["ai_requests"].deleted == 0


def test_a_request_with_a_reservation_still_open_is_kept_and_the_ledger_never_loses_a_row(db, tmp_path):
    old = NOW - timedelta(days=20)
    account = rows.account(db)
    held = rows.ai_request(db, old, "failed", account)
    settled = rows.ai_request(db, old, "completed", account)
    rows.reservation(db, account, held, ended=False)
    rows.reservation(db, account, settled, ended=True)
    ledger_before = rows.ids(db, token_ledger)
    clean(db, tmp_path, "ai_requests")
    assert rows.ids(db, ai_requests) == {held}
    assert rows.ids(db, token_ledger) == ledger_before
    with db.connect() as conn:
        referenced = set(conn.execute(sa.select(token_ledger.c.request_id)).scalars())
    assert referenced == {held, None}


def test_requests_the_ai_domain_still_works_on_are_neither_timed_out_nor_deleted(db, tmp_path):
    old, account = NOW - timedelta(days=20), rows.account(db)
    retry_scheduled = rows.ai_request(db, old, "failed", account, next_attempt_at=NOW + timedelta(minutes=5))
    waiting_for_quota = rows.ai_request(db, old, "pending", account, wait_reason="quota",
                                        next_attempt_at=NOW + timedelta(hours=1))
    held = rows.ai_request(db, old, "processing", account, lease_until=NOW - timedelta(hours=1))
    rows.reservation(db, account, held, ended=False)
    abandoned = rows.ai_request(db, old, "pending", account)
    reports = clean(db, tmp_path, "ai_requests_abandoned", "ai_requests")
    with db.connect() as conn:
        statuses = dict(conn.execute(sa.select(ai_requests.c.id, ai_requests.c.status)).all())
    assert statuses == {retry_scheduled: "failed", waiting_for_quota: "pending", held: "processing",
                        abandoned: "timeout"}
    assert (reports["ai_requests_abandoned"].deleted, reports["ai_requests"].deleted) == (1, 0)


def test_a_notification_stays_while_an_attempt_is_younger_or_a_webhook_is_to_apply(db, tmp_path):
    old = NOW - timedelta(days=120)
    with_young_attempt = rows.notification(db, old, "failed_final")
    young_attempt = rows.attempt(db, with_young_attempt, NOW - timedelta(days=10))
    with_pending_webhook = rows.notification(db, old, "delivered")
    pending_webhook = rows.webhook_event(db, old, None, with_pending_webhook)
    done = rows.notification(db, old, "read")
    rows.attempt(db, done, old)
    rows.webhook_event(db, old, NOW - timedelta(days=1), done)  # applied, younger than its own policy
    reports = clean(db, tmp_path, "notifications")
    assert rows.ids(db, notifications) == {with_young_attempt, with_pending_webhook}
    assert rows.ids(db, notification_attempts) == {young_attempt}
    with db.connect() as conn:
        hooks = dict(conn.execute(sa.select(webhook_events.c.id, webhook_events.c.notification_id)).all())
    assert hooks[pending_webhook] == with_pending_webhook
    assert None in hooks.values()  # the deleted notification's applied event stays, unlinked
    assert reports["notifications"].deleted == 1


def test_an_import_stays_while_its_file_is_kept_or_a_younger_import_is_its_duplicate(db, tmp_path):
    old = NOW - timedelta(days=100)
    kept_file = tmp_path / "processed" / "2026-02-20" / "kept.csv"
    kept_file.parent.mkdir(parents=True)
    kept_file.write_text("siren\n")
    with_file = rows.import_row(db, old, file_path=kept_file, errors=3)
    gone = rows.import_row(db, old, file_path=tmp_path / "processed" / "gone.csv", errors=25)
    original = rows.import_row(db, old, errors=2)
    young_duplicate = rows.import_row(db, NOW - timedelta(days=1), "duplicate", duplicate_of_id=original)
    old_original = rows.import_row(db, old)
    old_duplicate = rows.import_row(db, old - timedelta(days=1), "duplicate", duplicate_of_id=old_original)
    report = clean(db, tmp_path, "imports", batch_size=10)["imports"]
    assert rows.ids(db, imports) == {with_file, original, young_duplicate}
    with db.connect() as conn:
        errors_by_import = conn.execute(sa.select(import_errors.c.import_id, sa.func.count())
                                        .group_by(import_errors.c.import_id)).all()
    assert dict(errors_by_import) == {with_file: 3, original: 2}
    assert report.deleted == 3 and gone not in rows.ids(db, imports) and old_duplicate not in rows.ids(db, imports)


def _populate(engine, expired: int, young: int) -> set[int]:
    with engine.begin() as conn:
        conn.execute(processed_messages.insert(), [
            {"message_key": f"old-{n}", "processed_at": NOW - timedelta(days=8, seconds=n), "expires_at": NOW}
            for n in range(expired)])
        conn.execute(processed_messages.insert(), [
            {"message_key": f"young-{n}", "processed_at": NOW - timedelta(days=1), "expires_at": NOW}
            for n in range(young)])
    with engine.connect() as conn:
        return set(conn.execute(sa.select(processed_messages.c.id)
                                .where(processed_messages.c.message_key.like("young-%"))).scalars())


def _snapshot(engine):
    tables = (processed_messages, ai_requests, notifications, notification_attempts, webhook_events, alerts,
              imports, import_errors, token_ledger)
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t)).all()) for t in tables}


def test_a_dry_run_counts_what_a_run_deletes_and_changes_nothing(db, tmp_path):
    _populate(db, expired=30, young=5)
    old = NOW - timedelta(days=200)
    rows.ai_request(db, NOW - timedelta(days=1), "pending")
    rows.ai_request(db, old, "timeout")
    notification = rows.notification(db, old, "expired")
    rows.attempt(db, notification, old)
    rows.alert(db, old)
    rows.import_row(db, old, errors=4)
    before = _snapshot(db)
    dry = clean(db, tmp_path, dry_run=True)
    assert _snapshot(db) == before
    assert all(report.deleted == 0 for report in dry.values())
    assert dry["processed_messages"].oldest_remaining_age_s == timedelta(days=8, seconds=29).total_seconds()
    assert dry["processed_messages"].remaining == 35
    real = clean(db, tmp_path)
    assert {name: report.would_delete for name, report in dry.items()} == {
        name: report.deleted for name, report in real.items()}
    assert dry["processed_messages"].would_delete == 30 and dry["ai_requests_abandoned"].would_delete == 1
    assert all(report.would_delete == 0 for report in real.values())


class Transactions:
    """The rows of `table` each commit of the engine removed, counted inside the transaction just before it
    commits (on the DBAPI connection, outside SQLAlchemy's statement events)."""

    def __init__(self, engine, table):
        self.table, self.rows_per_commit = table, []
        with engine.connect() as conn:
            self.count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        sa.event.listen(engine, "commit", self._commit)

    def _count(self, driver) -> int:
        cursor = driver.cursor()
        cursor.execute(f"SELECT count(*) FROM {self.table.name}")
        [count] = cursor.fetchone()
        cursor.close()
        return count

    def _commit(self, conn):
        count = self._count(conn.connection.driver_connection)
        if count != self.count:
            self.rows_per_commit.append(self.count - count)
        self.count = count


def test_no_transaction_deletes_more_than_the_batch_size(db, tmp_path):
    young = _populate(db, expired=2_500, young=10)
    transactions = Transactions(db, processed_messages)
    batches = []
    applied = rows.retention(batch_size=1_000)
    [report] = run_policies(db, applied, applied.selected(["processed_messages"]),
                            Run(NOW, tmp_path, on_batch=batches.append))
    assert transactions.rows_per_commit == [1_000, 1_000, 500]
    assert [(b.batch, b.rows, b.total) for b in batches] == [(1, 1_000, 1_000), (2, 1_000, 2_000), (3, 500, 2_500)]
    assert (report.deleted, report.batches, report.remaining) == (2_500, 3, 10)
    assert rows.ids(db, processed_messages) == young


def test_a_cleanup_stopped_between_batches_and_run_again_ends_as_one_uninterrupted_run(db, tmp_path):
    young = _populate(db, expired=950, young=7)
    old = NOW - timedelta(days=100)
    for _ in range(5):
        rows.import_row(db, old, errors=30)
    kept_import = rows.import_row(db, NOW - timedelta(days=2), errors=1)
    applied = rows.retention(batch_size=200)
    batches = []
    stop = Run(NOW, tmp_path, on_batch=batches.append, should_stop=lambda: len(batches) >= 2)
    first = run_policies(db, applied, applied.selected(["processed_messages", "imports"]), stop)
    assert [(r.name, r.deleted, r.stopped) for r in first] == [("processed_messages", 400, True)]
    second = run_policies(db, applied, applied.selected(["processed_messages", "imports"]), Run(NOW, tmp_path))
    assert [(r.name, r.deleted, r.stopped) for r in second] == [("processed_messages", 550, False),
                                                                 ("imports", 5, False)]
    assert rows.ids(db, processed_messages) == young
    assert rows.ids(db, imports) == {kept_import}
    with db.connect() as conn:
        assert set(conn.execute(sa.select(import_errors.c.import_id)).scalars()) == {kept_import}
