"""Imports that failed for a transient reason: found, claimed once for an automatic retry."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import imports

MAX_AUTO_RETRIES = 1


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


def claim_transient_failures(engine: Engine) -> list[dict]:
    """Transient failures not yet retried automatically; each is claimed (auto_retries + 1) once."""
    with write_transaction(engine) as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(imports.c.id, imports.c.partition_key, imports.c.auto_retries)
            .where(imports.c.status == "failed", imports.c.failure_kind == "transient",
                   imports.c.auto_retries < MAX_AUTO_RETRIES, imports.c.partition_key.is_not(None))
            .order_by(imports.c.id)
        ).mappings()]
        for row in rows:
            conn.execute(imports.update().where(imports.c.id == row["id"])
                         .values(auto_retries=imports.c.auto_retries + 1))
    return rows
