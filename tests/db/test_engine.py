import threading
from contextlib import closing
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from nightshift.db.engine import ThreadWriter, create_engine, normalize_url, write_transaction
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


def test_a_thread_writer_commits_each_statement_on_one_connection_per_thread(db):
    writer = ThreadWriter(db)
    insert = token_periods.insert().values(account_id=sa.bindparam("account_id"), period_start=sa.bindparam("period"),
                                           quota=10).returning(token_periods.c.id)
    account_ids = _accounts(db, 4)

    def write(account_id: int) -> None:
        for month in range(1, 4):
            writer.execute(insert, {"account_id": account_id, "period": date(2026, month, 1)})

    threads = [threading.Thread(target=write, args=(a,)) for a in account_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Committed as they ran: another connection sees every row before the writer is closed.
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_periods)).scalar() == 12
    assert len(writer.opened) == 4
    writer.close()
    assert writer.opened == []


# A server that cuts a connection is PostgreSQL's case (SQLite has no server).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_thread_writer_replaces_a_connection_the_server_cut(db):
    writer = ThreadWriter(db)
    [account_id] = _accounts(db, 1)
    insert = token_periods.insert().values(account_id=account_id, period_start=sa.bindparam("period"), quota=10)
    writer.execute(insert, {"period": date(2026, 1, 1)})
    [kept] = writer.opened
    pid = kept.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    writer.execute(insert, {"period": date(2026, 2, 1)})
    assert writer.opened and writer.opened[0] is not kept
    # Any other error is the caller's: raised, and the next statement still runs.
    with pytest.raises(sa.exc.IntegrityError):
        writer.execute(insert, {"period": date(2026, 2, 1)})
    writer.execute(insert, {"period": date(2026, 3, 1)})
    writer.close()
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(token_periods)).scalar() == 3


def _accounts(db, count: int) -> list[int]:
    with write_transaction(db) as conn:
        insert = accounts.insert().values(slug=sa.bindparam("slug"), name="Writer").returning(accounts.c.id)
        return [conn.execute(insert, {"slug": f"writer-{n}"}).scalar_one() for n in range(count)]
