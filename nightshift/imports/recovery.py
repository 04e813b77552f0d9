"""Imports that need an automatic second chance, each claimed once (auto_retries + 1):
- failed for a transient reason (database unavailable), or interrupted (its run or its process died);
- stalled: registered by the upload sensor but never started (its run was never launched, or ended
  before the import began).

The lease of an import: a lock its process holds from the moment its run starts it until its outcome is
committed, which the operating system or the database server lets go when the process dies, however it
dies (SIGKILL, out of memory, a lost machine). On PostgreSQL it is a session advisory lock on a connection
of its own; on SQLite (one machine) an flock on a file beside the database. An import `received` or
`running` in a run whose lease nobody holds is dead: `interrupted`, its file left where it was for the
re-run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import advisory_lock_key, read_transaction, sqlite_file, write_transaction
from nightshift.db.schema import IMPORT_ENDED_WITHOUT_ROWS, IMPORT_IN_PROGRESS, imports
from nightshift.imports.messages import message

MAX_AUTO_RETRIES = 1
STALLED_PER_TICK = 100


def _lock_key(import_id: int) -> int:
    return advisory_lock_key(f"nightshift.import:{import_id}")


def _lease_file(engine: Engine, import_id: int) -> Path | None:
    """The lock file of an import on a SQLite database kept on disk (None: an in-memory one, which no
    other process sees)."""
    database = sqlite_file(engine.url)
    return None if database is None else Path(f"{database}-import-leases") / str(import_id)


def _flock(path: Path, *, wait: bool) -> int | None:
    """A descriptor holding the exclusive flock of `path` (created if missing), or None when another open
    file holds it and `wait` is false. A file unlinked by its releaser while this waited is not the one
    at `path` any more: then the lock is taken again on the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(descriptor)
            return None
        except BaseException:  # a wait cut short (a signal, an interrupt): the descriptor is not kept
            os.close(descriptor)
            raise
        try:
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)


def _release_file(path: Path, descriptor: int) -> None:
    with suppress(FileNotFoundError):
        path.unlink()
    os.close(descriptor)  # after the unlink: a waiter then sees its file is gone and takes the new one


@contextmanager
def lease(engine: Engine, import_id: int) -> Iterator[None]:
    """Hold the lease of an import for the block: the run that imports it holds it until the outcome is
    committed. Waits while another process holds it (a re-execution started before the first run ended)."""
    path = _lease_file(engine, import_id)
    if path is not None:
        descriptor = _flock(path, wait=True)
        try:
            yield
        finally:
            _release_file(path, descriptor)
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_lock(_lock_key(import_id))))
        conn.commit()
        try:
            yield
        finally:
            _unlock(conn, import_id)


def _unlock(conn: Connection, import_id: int) -> None:
    """Let go of a session advisory lock; a connection that cannot is discarded (closing it lets go)."""
    try:
        conn.execute(sa.select(sa.func.pg_advisory_unlock(_lock_key(import_id))))
        conn.commit()
    except sa.exc.DBAPIError:
        conn.invalidate()


def lease_is_held(engine: Engine, import_id: int) -> bool:
    """Whether a process holds the lease of the import now (taking it without waiting, and letting go)."""
    path = _lease_file(engine, import_id)
    if path is not None:
        descriptor = _flock(path, wait=False)
        if descriptor is None:
            return True
        _release_file(path, descriptor)
        return False
    if engine.dialect.name != "postgresql":
        return True  # an in-memory database: only this process sees it
    with engine.connect() as conn:
        taken = conn.execute(sa.select(sa.func.pg_try_advisory_lock(_lock_key(import_id)))).scalar_one()
        conn.commit()
        if taken:
            _unlock(conn, import_id)
    return not taken


def in_progress_imports(engine: Engine) -> list[dict]:
    """Imports a run has started (it recorded its run id) and not finished: alive or dead."""
    query = (sa.select(imports.c.id, imports.c.dagster_run_id)
             .where(imports.c.status.in_(IMPORT_IN_PROGRESS), imports.c.dagster_run_id.is_not(None))
             .order_by(imports.c.id))
    with read_transaction(engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def mark_interrupted(engine: Engine, import_id: int, run_id: str, lang: str) -> bool:
    """`interrupted` (a transient failure: retried once automatically, re-run by a backfill), if it is still
    in progress in that run; the file stays where it is. Whether it was."""
    with write_transaction(engine) as conn:
        changed = conn.execute(
            imports.update()
            .where(imports.c.id == import_id, imports.c.status.in_(IMPORT_IN_PROGRESS),
                   imports.c.dagster_run_id == run_id)
            .values(status="interrupted", failure_kind="transient", finished_at=datetime.now(UTC),
                    message=message("ui_interrupted", lang, run_id=run_id))
        ).rowcount
    return bool(changed)


def interrupt_abandoned(engine: Engine, lang: str) -> list[dict]:
    """Every import in progress whose lease nobody holds (its process died) turned `interrupted`; those
    turned (id, dagster_run_id)."""
    return [row for row in in_progress_imports(engine)
            if not lease_is_held(engine, row["id"])
            and mark_interrupted(engine, row["id"], row["dagster_run_id"], lang)]


def interrupted_runs(engine: Engine, since: datetime) -> dict[str, int]:
    """The runs in which an import was interrupted since `since`: run id -> import id."""
    query = sa.select(imports.c.dagster_run_id, imports.c.id).where(
        imports.c.status == "interrupted", imports.c.dagster_run_id.is_not(None), imports.c.finished_at >= since)
    with read_transaction(engine) as conn:
        return dict(conn.execute(query).all())


_RETRYABLE = sa.and_(imports.c.auto_retries < MAX_AUTO_RETRIES, imports.c.partition_key.is_not(None))


def _claim(engine: Engine, condition: sa.ColumnElement[bool]) -> list[dict]:
    """The retryable imports matching `condition`, each claimed in the same transaction."""
    with write_transaction(engine) as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(imports.c.id, imports.c.partition_key, imports.c.auto_retries)
            .where(condition, _RETRYABLE).order_by(imports.c.id)
        ).mappings()]
        if rows:
            conn.execute(imports.update().where(imports.c.id.in_([r["id"] for r in rows]))
                         .values(auto_retries=imports.c.auto_retries + 1))
    return rows


def claim_transient_failures(engine: Engine) -> list[dict]:
    """Transient failures and interrupted imports not yet retried automatically."""
    return _claim(engine, sa.and_(imports.c.status.in_(IMPORT_ENDED_WITHOUT_ROWS),
                                  imports.c.failure_kind == "transient"))


def stalled_candidates(engine: Engine, registered_before: datetime) -> list[dict]:
    """Imports still `received` since before `registered_before`, not yet retried automatically (oldest
    first, at most STALLED_PER_TICK). The caller checks that no run is queued or running for them."""
    query = (sa.select(imports.c.id, imports.c.partition_key)
             .where(imports.c.status == "received", imports.c.created_at < registered_before, _RETRYABLE)
             .order_by(imports.c.id).limit(STALLED_PER_TICK))
    with read_transaction(engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def claim_stalled(engine: Engine, import_ids: list[int]) -> list[dict]:
    """Claims the given imports if they are still `received` (a run may have started one meanwhile)."""
    if not import_ids:
        return []
    return _claim(engine, sa.and_(imports.c.id.in_(import_ids), imports.c.status == "received"))


def failed_partition_keys(engine: Engine) -> list[str]:
    """Every `import_batch` partition whose latest import failed or was interrupted in a run: what a
    backfill of the failed partitions re-runs (each file is re-imported from where it was kept). Files
    rejected before any run (unknown account folder) have no Dagster partition and are left out; so are
    partitions re-imported since (their latest import is neither)."""
    return [row["partition_key"] for row in failed_partition_rows(engine)]


def failed_partition_rows(engine: Engine) -> list[dict]:
    """The import log rows behind failed_partition_keys: the latest import of each such partition."""
    later = imports.alias("later")
    newer_import = (sa.select(later.c.id)
                    .where(later.c.partition_key == imports.c.partition_key, later.c.id > imports.c.id,
                           later.c.status != "duplicate")
                    .exists())
    query = (sa.select(imports)
             .where(imports.c.status.in_(IMPORT_ENDED_WITHOUT_ROWS), imports.c.dagster_run_id.is_not(None),
                    imports.c.partition_key.is_not(None), ~newer_import)
             .order_by(imports.c.partition_key))
    with read_transaction(engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]