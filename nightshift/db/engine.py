"""Engines and transactions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import hashlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Pages of a new SQLite database (an existing one keeps its own): bulk imports write less often than
# with SQLite's 4 KiB pages.
SQLITE_PAGE_SIZE = 16_384
_WRITE_OPTION = "nightshift_write"

logger = logging.getLogger(__name__)


def normalize_url(url: str | URL) -> URL:
    """The app talks to PostgreSQL through psycopg 3 whatever the URL's spelling."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str | URL) -> str | None:
    """The file of a SQLite database kept on disk; None for an in-memory one or another database."""
    parsed = make_url(url)
    database = parsed.database
    return database if parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:") else None


def create_engine(url: str | URL, **kwargs) -> Engine:
    url = normalize_url(url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)

    if database := sqlite_file(url):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Take transaction control from pysqlite so writers can BEGIN IMMEDIATE (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # before WAL mode creates the file
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        # A writer takes the write lock up front: a deferred transaction that upgrades from read to
        # write fails at once with "database is locked" instead of waiting for busy_timeout.
        mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# A database error worth another try (the server restarting, a dropped connection, a lock or pool
# timeout); any other error is a bug or bad data and fails at once.
TRANSIENT_DB_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def dialect_insert(conn: Connection, table: sa.Table) -> sa.Insert:
    """An INSERT of the connection's dialect, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    return insert_of(conn.dialect.name)(table)


def insert_of(dialect: str):
    """The `insert` construct of a dialect (by its name), for statements built once and reused."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def advisory_lock_key(name: str) -> int:
    """The 64-bit key of a PostgreSQL advisory lock named `name` (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def utc(moment: datetime | None) -> datetime | None:
    """A timestamp read back as an aware UTC datetime: SQLite hands back the naive UTC value it stored."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: commits on success, rolls back on error; on SQLite the single writer."""
    with engine.connect() as conn, begin_write(conn):
        yield conn


class GroupWriter:
    """Rows of one INSERT … RETURNING written for many threads, each caller waiting until its row is
    committed; rows that arrive while a commit is under way go together in the next one (group commit).
    For threads that each need one small row durable before going on (the sweep's attempt row before
    each request): a commit per row waits for the disk every time (about 1.3 ms on PostgreSQL here),
    and on SQLite every connection takes its turn at the single writer's lock. One connection on one
    thread writes them all; a statement that fails, fails each row of its group."""

    def __init__(self, engine: Engine, statement: sa.Insert) -> None:
        # Its own connection, outside the engine's pool, kept until close().
        self.engine = create_engine(engine.url, poolclass=sa.pool.NullPool)
        self.statement = statement
        self.sqlite = is_sqlite(engine.url)
        self.pending: queue.SimpleQueue = queue.SimpleQueue()
        self.connection: Connection | None = None
        self.thread = threading.Thread(target=self._write_groups, name="nightshift-group-writer", daemon=True)
        self.thread.start()

    def insert(self, params: dict) -> sa.Row:
        """Writes the row and returns what the statement returns for it, once it is committed."""
        written: Future = Future()
        self.pending.put((params, written))
        return written.result()

    def close(self) -> None:
        self.pending.put(None)
        self.thread.join()
        if self.connection is not None:
            with suppress(sa.exc.DBAPIError):
                self.connection.close()
        self.engine.dispose()

    def _write_groups(self) -> None:
        stopping = False
        while not stopping:
            group = [self.pending.get()]
            with suppress(queue.Empty):
                while True:
                    group.append(self.pending.get_nowait())
            stopping = None in group  # close(): what came before it is still written
            group = [entry for entry in group if entry is not None]
            if not group:
                continue
            try:
                rows = self._write([params for params, _ in group])
            except Exception as exc:  # every caller of the group gets the error, the writer goes on
                for _, written in group:
                    written.set_exception(exc)
            else:
                for (_, written), row in zip(group, rows, strict=True):
                    written.set_result(row)

    def _write(self, rows: list[dict]) -> list[sa.Row]:
        try:
            return self._execute(rows)
        except sa.exc.DBAPIError as exc:
            self._discard()
            if not exc.connection_invalidated:
                raise
        # The kept connection had died (the server restarted, an idle connection was cut): a new one,
        # once, as a pool's pre-ping would have given.
        return self._execute(rows)

    def _execute(self, rows: list[dict]) -> list[sa.Row]:
        if self.connection is None:
            self.connection = self.engine.connect()
            if not self.sqlite:  # one statement is atomic on its own: no BEGIN and COMMIT round trips
                self.connection = self.connection.execution_options(isolation_level="AUTOCOMMIT")
        if not self.sqlite:
            return self.connection.execute(self.statement, rows).all()
        with begin_write(self.connection):
            return self.connection.execute(self.statement, rows).all()

    def _discard(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            with suppress(sa.exc.DBAPIError):
                conn.close()


@contextmanager
def begin_write(conn: Connection) -> Iterator[Connection]:
    """A write transaction on a connection already in use (its TEMP tables stay visible)."""
    conn.execution_options(**{_WRITE_OPTION: True})
    try:
        with conn.begin():
            yield conn
    finally:
        conn.execution_options(**{_WRITE_OPTION: False})


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def checkpoint_after_commit(conn: Connection) -> Iterator[None]:
    """Around a large SQLite write transaction on `conn`: its commit does not copy the WAL into the
    database itself (the automatic checkpoint: about a second per million rows, on the committing
    thread); a thread started after the commit does it while the caller goes on. It is not a daemon
    thread: the process ends only once the copy is done. Nothing changes on PostgreSQL, in memory, or
    when the transaction fails (nothing was written)."""
    database = sqlite_file(conn.engine.url)
    if database is None:
        yield
        return
    driver = conn.connection.driver_connection  # a PRAGMA outside SQLAlchemy's transaction
    [pages] = driver.execute("PRAGMA wal_autocheckpoint").fetchone()
    driver.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield
    finally:
        with suppress(sqlite3.Error):  # a broken connection is discarded, its setting with it
            driver.execute(f"PRAGMA wal_autocheckpoint={pages}")
    threading.Thread(target=_checkpoint, args=(database,), name="nightshift-wal-checkpoint").start()


def _checkpoint(database: str) -> None:
    # PASSIVE: copies what no reader still needs and never waits; what remains, a later commit's
    # automatic checkpoint copies. mode=rw: a database that has gone is not created again, empty.
    uri = f"{Path(database).resolve().as_uri()}?mode=rw"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as checkpoint:
            checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:
        logger.warning("WAL checkpoint of %s after an import: %s (a later commit will do it)", database, exc)
