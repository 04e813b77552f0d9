import threading
import time
from contextlib import closing
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from nightshift.db.engine import GroupWriter, create_engine, normalize_url, write_transaction
from nightshift.db.schema import accounts, import_errors, token_periods


def test_postgres_urls_use_psycopg3():
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'sub' / 'app.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_a_new_sqlite_database_gets_large_pages_an_existing_one_keeps_its_own(tmp_path):
    import sqlite3

    new = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    with new.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 16384
    new.dispose()
    with closing(sqlite3.connect(tmp_path / "old.db")) as old:
        old.execute("CREATE TABLE kept (x)")
        old.execute("INSERT INTO kept VALUES (1)")
        old.commit()
    existing = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with existing.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 4096
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("SELECT x FROM kept").scalar() == 1
    existing.dispose()


def test_foreign_keys_are_enforced(db):
    with pytest.raises(sa.exc.IntegrityError):
        with write_transaction(db) as conn:
            conn.execute(import_errors.insert().values(import_id=424242, code="required", message="x"))


def test_a_failed_write_transaction_leaves_nothing(db):
    with pytest.raises(RuntimeError):
        with write_transaction(db) as conn:
            conn.execute(accounts.insert().values(slug="acme", name="Acme"))
            raise RuntimeError("boom")
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one() == 0


def test_concurrent_writers_never_see_database_is_locked(db):
    """Eight threads each read-then-write in their own transactions: all commit, none fails."""
    with write_transaction(db) as conn:
        account_id = conn.execute(accounts.insert().values(slug="acme", name="Acme")).inserted_primary_key[0]
        conn.execute(token_periods.insert().values(account_id=account_id, period_start=date(2026, 11, 1),
                                                   quota=1000))
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(25):
                with write_transaction(db) as conn:
                    used = conn.execute(sa.select(token_periods.c.used)).scalar_one()
                    conn.execute(token_periods.update().values(used=used + 1))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.connect() as conn:
        # Read-modify-write under the single-writer lock (SQLite) or row lock... only SQLite serialises
        # whole transactions; on PostgreSQL this asserts that no write failed.
        used = conn.execute(sa.select(token_periods.c.used)).scalar_one()
    if db.dialect.name == "sqlite":
        assert used == 200
    else:
        assert 0 < used <= 200


@pytest.fixture
def checkpoint_threads(monkeypatch):
    """The checkpoint threads `checkpoint_after_commit` starts, recorded as they start; each holds its copy
    until `release` is set."""
    from nightshift.db import engine as engine_module

    started, release = [], threading.Event()
    copy_wal = engine_module._checkpoint

    def held(database: str) -> None:
        release.wait(30)
        copy_wal(database)

    class Recorded(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(engine_module, "_checkpoint", held)
    monkeypatch.setattr(engine_module, "threading", SimpleNamespace(Thread=Recorded))
    yield started, release
    release.set()
    for thread in started:
        thread.join(30)


def test_a_large_sqlite_commit_leaves_the_wal_copy_to_a_thread(tmp_path, checkpoint_threads):
    from nightshift.db.engine import begin_write, checkpoint_after_commit

    started, release = checkpoint_threads
    database = tmp_path / "app.db"
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (data BLOB)")
        conn.commit()
        with checkpoint_after_commit(conn), begin_write(conn):
            assert conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
            conn.exec_driver_sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                                 "INSERT INTO blobs SELECT zeroblob(4000) FROM n")
        assert conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
        # Committed, not copied: the 12 MB are in the WAL, the database file holds the empty table.
        [thread] = started
        assert database.stat().st_size < 1_000_000 < 12_000_000 < Path(f"{database}-wal").stat().st_size
        assert conn.exec_driver_sql("SELECT count(*) FROM blobs").scalar_one() == 3000
        release.set()
        thread.join(30)
        assert database.stat().st_size > 12_000_000  # the thread copied them
    engine.dispose()


def test_a_failed_sqlite_write_starts_no_checkpoint(tmp_path, checkpoint_threads):
    from nightshift.db.engine import begin_write, checkpoint_after_commit

    started, _ = checkpoint_threads
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.connect() as conn:
        with pytest.raises(RuntimeError), checkpoint_after_commit(conn), begin_write(conn):
            conn.exec_driver_sql("CREATE TABLE written (x)")
            raise RuntimeError("boom")
        assert conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    assert started == []
    engine.dispose()


PERIOD_INSERT = token_periods.insert().returning(token_periods.c.id, token_periods.c.account_id,
                                                 token_periods.c.period_start, sort_by_parameter_order=True)


def test_a_group_writer_commits_each_callers_row_and_gives_each_its_own(db):
    writer = GroupWriter(db, PERIOD_INSERT)
    account_ids = _accounts(db, 4)
    returned: list[tuple] = []

    def write(account_id: int) -> None:
        for month in range(1, 4):
            row = writer.insert({"account_id": account_id, "period_start": date(2026, month, 1), "quota": 10})
            returned.append((account_id, month, tuple(row)))

    threads = [threading.Thread(target=write, args=(a,)) for a in account_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Committed once insert() returned: another connection sees every row before the writer is closed,
    # and each caller got back the row it wrote, not a neighbour's of the same group.
    with db.connect() as conn:
        stored = {r.id: (r.account_id, r.period_start)
                  for r in conn.execute(sa.select(token_periods.c.id, token_periods.c.account_id,
                                                  token_periods.c.period_start))}
    assert len(stored) == 12
    for account_id, month, (row_id, row_account, row_period) in returned:
        assert stored[row_id] == (account_id, date(2026, month, 1)) == (row_account, row_period)
    writer.close()


def test_rows_that_arrive_while_a_write_waits_go_together_in_the_next_statement(db):
    writer = GroupWriter(db, PERIOD_INSERT)
    account_ids = _accounts(db, 6)
    statements: list[str] = []
    sa.event.listen(writer.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: statements.append(statement.lstrip().upper()))
    threads = [threading.Thread(target=writer.insert, args=({"account_id": a, "period_start": date(2026, 1, 1),
                                                             "quota": 10},)) for a in account_ids]
    # Another write transaction holds what an insert needs (SQLite: the writer's lock; PostgreSQL: a
    # table lock), so the writer's first statement waits for it.
    with write_transaction(db) as blocker:
        blocker.exec_driver_sql("SELECT 1" if db.dialect.name == "sqlite"
                                else "LOCK TABLE token_periods IN SHARE MODE")
        threads[0].start()
        _wait_for(lambda: len(statements) == 1)  # its INSERT (SQLite: its BEGIN IMMEDIATE) is waiting
        for thread in threads[1:]:
            thread.start()
        _wait_for(lambda: writer.pending.qsize() == 5)
    for thread in threads:
        thread.join()
    writer.close()
    # Written in two goes, the waiting row then the five that queued behind it: on SQLite two write
    # transactions (a row per INSERT inside), on PostgreSQL two INSERT statements in autocommit.
    writes = [s for s in statements if s.startswith("BEGIN" if db.dialect.name == "sqlite" else "INSERT")]
    assert len(writes) == 2
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_periods)).scalar() == 6


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# A server that cuts a connection is PostgreSQL's case (SQLite has no server).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_group_writer_replaces_a_connection_the_server_cut_and_gives_other_errors_to_the_caller(db):
    writer = GroupWriter(db, PERIOD_INSERT)
    [account_id] = _accounts(db, 1)
    row = {"account_id": account_id, "quota": 10}
    writer.insert({**row, "period_start": date(2026, 1, 1)})
    kept = writer.connection
    pid = kept.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    writer.insert({**row, "period_start": date(2026, 2, 1)})
    assert writer.connection is not None and writer.connection is not kept
    # Any other error is the caller's: raised, and the next row is still written.
    with pytest.raises(sa.exc.IntegrityError):
        writer.insert({**row, "period_start": date(2026, 2, 1)})
    writer.insert({**row, "period_start": date(2026, 3, 1)})
    writer.close()
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_periods)).scalar() == 3


def _accounts(db, count: int) -> list[int]:
    with write_transaction(db) as conn:
        insert = accounts.insert().values(slug=sa.bindparam("slug"), name="Writer").returning(accounts.c.id)
        return [conn.execute(insert, {"slug": f"writer-{n}"}).scalar_one() for n in range(count)]
