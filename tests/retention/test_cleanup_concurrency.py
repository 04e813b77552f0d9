"""A cleanup running beside the work it must never block, on SQLite and PostgreSQL: an import of a real file,
and a sweep-style claimer of notifications (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on
SQLite). Both sides finish and nothing is lost; rows a transaction holds are skipped, not waited for."""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from nightshift.config import load_settings
from nightshift.db.engine import write_transaction
from nightshift.db.schema import cities, notification_attempts, notifications, processed_messages
from nightshift.imports.service import ImportOptions, run_import
from nightshift.retention.cleanup import run_policies
from nightshift.retention.run import Run
from tests.retention import rows

EXPIRED = 30_000
BATCH = 1_000


def _expired_rows(engine, now):
    old = now - timedelta(days=120)
    with engine.begin() as conn:
        conn.execute(processed_messages.insert(), [
            {"message_key": f"m{n}", "processed_at": old, "expires_at": old} for n in range(EXPIRED)])
        [final] = conn.execute(notifications.insert().returning(notifications.c.id), [
            {"source_app": "cargo", "idempotency_key": "old-final", "recipient": "+22370000000",
             "message_type": "notification", "body": "x", "status": "delivered", "created_at": old}]).scalars()
        conn.execute(notification_attempts.insert(), [
            {"notification_id": final, "attempt_no": n, "outcome": "sent", "started_at": old}
            for n in range(EXPIRED // 3)])


def _clean(engine, data_dir, now, names, done: dict, wait_for: threading.Event | None = None):
    """Runs the policies (once `wait_for` is set); done["first_batch"] is set after its first batch."""
    applied = rows.retention(batch_size=BATCH)
    done["batch_times"], done["first_batch"] = [], threading.Event()

    def on_batch(progress):
        done["batch_times"].append(time.perf_counter())
        done["first_batch"].set()

    if wait_for is not None:
        assert wait_for.wait(60)
    done["started"] = time.perf_counter()
    run = Run(now, data_dir, on_batch=on_batch)
    done["reports"] = {r.name: r for r in run_policies(engine, applied, applied.selected(names), run)}


def _run_both(first, second, timeout=240):
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a side was blocked"


def test_a_cleanup_and_an_import_running_together_both_finish_and_lose_nothing(db, tmp_path):
    now = datetime.now(UTC)
    _expired_rows(db, now)
    young = rows.processed_message(db, now - timedelta(days=1))
    csv = tmp_path / "villes.csv"
    count = 50_000
    csv.write_text("nom,code_postal\n" + "".join(f"Ville {n},{10000 + n}\n" for n in range(count)), encoding="utf-8")
    settings = load_settings({"NIGHTSHIFT_DATA_DIR": str(tmp_path / "data"),
                              "NIGHTSHIFT_DATABASE_URL": db.url.render_as_string(hide_password=False)})
    imported, cleaned, reading = {}, {}, threading.Event()

    def do_import():
        imported["started"] = time.perf_counter()
        imported["outcome"] = run_import(db, csv, settings, ImportOptions(profile="cities"),
                                         progress=lambda rows_read: reading.set())
        imported["ended"] = time.perf_counter()

    _run_both(do_import, lambda: _clean(db, tmp_path / "data", now, ["processed_messages", "notification_attempts"],
                                        cleaned, wait_for=reading))
    outcome = imported["outcome"]
    assert (outcome.status, outcome.inserted) == ("succeeded", count)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cities)).scalar_one() == count
    assert cleaned["reports"]["processed_messages"].deleted == EXPIRED
    assert cleaned["reports"]["notification_attempts"].deleted == EXPIRED // 3
    assert rows.ids(db, processed_messages) == {young}
    # The cleanup began while the import ran (on SQLite its batches then wait for the import's merge
    # transaction, the single writer, and the import for one batch at most).
    assert imported["started"] < cleaned["started"] < imported["ended"]


def _claimer(engine, claimed: list, latencies: list, cleaned: dict):
    """Claims due notifications ten at a time as a sweep does, then finalizes them by claim token; starts
    once the cleanup has done its first batch."""
    postgres = engine.dialect.name == "postgresql"
    while "first_batch" not in cleaned:
        time.sleep(0.001)
    assert cleaned["first_batch"].wait(60)
    while True:
        token = str(uuid.uuid4())
        started = time.perf_counter()
        with write_transaction(engine) as conn:
            due = sa.select(notifications.c.id).where(notifications.c.status == "pending").order_by(
                notifications.c.id).limit(10)
            if postgres:
                due = due.with_for_update(skip_locked=True)
            ids = list(conn.execute(due).scalars())
            if ids:
                conn.execute(notifications.update().where(notifications.c.id.in_(ids))
                             .values(status="sending", claim_token=token))
        latencies.append((started, time.perf_counter() - started))
        if not ids:
            return
        with write_transaction(engine) as conn:
            conn.execute(notifications.update().where(notifications.c.claim_token == token).values(status="sent"))
        claimed.extend(ids)


def test_a_cleanup_beside_a_claiming_sweep_blocks_neither(db, tmp_path):
    now = datetime.now(UTC)
    _expired_rows(db, now)
    due = 400
    with db.begin() as conn:
        conn.execute(notifications.insert(), [
            {"source_app": "cargo", "idempotency_key": f"due-{n}", "recipient": "+22370000000",
             "message_type": "notification", "body": "x", "status": "pending"} for n in range(due)])
    claimed, latencies, cleaned = [], [], {}
    _run_both(lambda: _claimer(db, claimed, latencies, cleaned),
              lambda: _clean(db, tmp_path, now, ["processed_messages", "notification_attempts", "notifications"],
                             cleaned))
    assert len(claimed) == len(set(claimed)) == due
    first, last = cleaned["batch_times"][0], cleaned["batch_times"][-1]
    assert any(first < started < last for started, _ in latencies), "they overlapped"
    with db.connect() as conn:
        statuses = dict(conn.execute(sa.select(notifications.c.status, sa.func.count())
                                     .group_by(notifications.c.status)).all())
    assert statuses == {"sent": due}  # the old delivered one went, with its attempts
    assert cleaned["reports"]["notification_attempts"].deleted == EXPIRED // 3
    assert cleaned["reports"]["notifications"].deleted == 1
    # A claim waits at most for one batch of the cleanup (generous bound for a loaded machine).
    assert max(latency for _, latency in latencies) < 2.0, latencies


def test_rows_another_transaction_holds_are_skipped_or_waited_for_one_batch_at_most(db, tmp_path):
    now = datetime.now(UTC)
    held = rows.processed_message(db, now - timedelta(days=30))
    others = {rows.processed_message(db, now - timedelta(days=30)) for _ in range(3)}
    with db.connect() as holder:
        transaction = holder.begin()
        if db.dialect.name == "postgresql":
            # A sweep-style lock on one expired row: the cleanup goes round it and says it is left.
            holder.execute(sa.select(processed_messages.c.id).where(processed_messages.c.id == held)
                           .with_for_update())
        else:
            # SQLite readers never block the writer (WAL): an open read transaction.
            holder.execute(sa.select(processed_messages.c.id)).all()
        cleaned = {}
        _run_both(lambda: _clean(db, tmp_path, now, ["processed_messages"], cleaned), lambda: None, timeout=60)
        transaction.rollback()
    report = cleaned["reports"]["processed_messages"]
    remaining = rows.ids(db, processed_messages)
    if db.dialect.name == "postgresql":
        assert remaining == {held} and report.would_delete == 1
        assert others.isdisjoint(remaining)
        again = {}
        _clean(db, tmp_path, now, ["processed_messages"], again)
        assert again["reports"]["processed_messages"].deleted == 1
    else:
        assert remaining == set() and report.deleted == 4
    assert rows.ids(db, processed_messages) == set()


def test_a_cleanup_beside_the_notification_sweep_blocks_neither(db, tmp_path):
    from nightshift.notifications import sweep
    from nightshift.notifications.outbox import enqueue
    from nightshift.notifications.providers import SandboxBackend
    from tests.notifications.fake_provider import fast_settings

    now = datetime.now(UTC)
    _expired_rows(db, now)
    settings = fast_settings()
    due = [enqueue(db, settings, source_app="cargo", to="70 12 34 56", body=f"Colis {n} arrivé",
                   message_type="colis_status").id for n in range(300)]
    swept, cleaned = {}, {}

    def do_sweep():
        while "first_batch" not in cleaned:
            time.sleep(0.001)
        assert cleaned["first_batch"].wait(60)
        swept["started"] = time.perf_counter()
        swept["summary"] = sweep.run_sweep(db, settings, SandboxBackend())
        swept["ended"] = time.perf_counter()

    _run_both(do_sweep, lambda: _clean(db, tmp_path, now, ["processed_messages", "notification_attempts",
                                                            "notifications"], cleaned))
    assert swept["summary"].as_dict()["sent"] == len(due)
    with db.connect() as conn:
        sent = dict(conn.execute(sa.select(notifications.c.id, notifications.c.status)
                                 .where(notifications.c.id.in_(due))).all())
        attempts = conn.execute(sa.select(notification_attempts.c.notification_id, sa.func.count())
                                .where(notification_attempts.c.notification_id.in_(due))
                                .group_by(notification_attempts.c.notification_id)).all()
    assert set(sent.values()) == {"sent"} and len(sent) == len(due)
    assert dict(attempts) == dict.fromkeys(due, 1)  # each sent once, its attempt row kept
    assert cleaned["reports"]["notification_attempts"].deleted == EXPIRED // 3
    assert cleaned["reports"]["notifications"].deleted == 1
    assert any(swept["started"] < t < swept["ended"] for t in cleaned["batch_times"]), "they overlapped"
