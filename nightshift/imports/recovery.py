"""Imports that need an automatic second chance, each claimed once (auto_retries + 1):
- failed for a transient reason (database unavailable, run interrupted);
- stalled: registered by the upload sensor but never started (its run was never launched, or ended
  before the import began).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import imports

MAX_AUTO_RETRIES = 1
STALLED_PER_TICK = 100


def running_imports(engine: Engine) -> list[dict]:
    query = sa.select(imports.c.id, imports.c.dagster_run_id).where(imports.c.status == "running")
    with read_transaction(engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def mark_interrupted(engine: Engine, import_id: int, run_id: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            imports.update()
            .where(imports.c.id == import_id, imports.c.status == "running")
            .values(status="failed", failure_kind="transient",
                    message=f"the run {run_id} ended before the import finished (interrupted)")
        )


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
    """Transient failures not yet retried automatically."""
    return _claim(engine, sa.and_(imports.c.status == "failed", imports.c.failure_kind == "transient"))


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
    """Every `import_batch` partition whose latest import failed in a run: what a backfill of the failed
    partitions re-runs (each file is re-imported from where it was kept). Files rejected before any run
    (unknown account folder) have no Dagster partition and are left out; so are partitions re-imported
    since (their latest import is not `failed`)."""
    later = imports.alias("later")
    newer_import = (sa.select(later.c.id)
                    .where(later.c.partition_key == imports.c.partition_key, later.c.id > imports.c.id,
                           later.c.status != "duplicate")
                    .exists())
    query = (sa.select(imports.c.partition_key).distinct()
             .where(imports.c.status == "failed", imports.c.dagster_run_id.is_not(None),
                    imports.c.partition_key.is_not(None), ~newer_import)
             .order_by(imports.c.partition_key))
    with read_transaction(engine) as conn:
        return list(conn.execute(query).scalars())
