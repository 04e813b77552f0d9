"""The import log (`imports` + `import_errors`): one row per received file, its stages and outcome."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import import_errors, imports

STAGES = ("received", "parsed", "validated", "merged", "done")
MAX_DETAILED_ERRORS = 10_000


def get(engine: Engine, import_id: int) -> dict | None:
    with read_transaction(engine) as conn:
        row = conn.execute(sa.select(imports).where(imports.c.id == import_id)).mappings().first()
    return dict(row) if row else None


def by_partition(engine: Engine, partition_key: str) -> dict | None:
    query = (sa.select(imports).where(imports.c.partition_key == partition_key, imports.c.status != "duplicate")
             .order_by(imports.c.id.desc()).limit(1))
    with read_transaction(engine) as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def update(conn: Connection, import_id: int, **values: Any) -> None:
    conn.execute(imports.update().where(imports.c.id == import_id).values(**values))


def update_status(engine: Engine, import_id: int, **values: Any) -> None:
    with write_transaction(engine) as conn:
        update(conn, import_id, **values)


def set_stage(engine: Engine, import_id: int, stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    update_status(engine, import_id, stage=stage)


def store_errors(conn: Connection, import_id: int, errors: pd.DataFrame) -> None:
    """Keep the first MAX_DETAILED_ERRORS errors (by line) of an import; counts per code live on the row."""
    conn.execute(import_errors.delete().where(import_errors.c.import_id == import_id))
    if errors.empty:
        return
    kept = errors.sort_values(["line", "column"], kind="stable").head(MAX_DETAILED_ERRORS)
    records = [
        {"import_id": import_id, "line": int(r.line) if pd.notna(r.line) else None, "column": r.column,
         "raw_value": None if pd.isna(r.value) else str(r.value)[:1000], "code": r.code, "message": r.message}
        for r in kept.itertuples(index=False)
    ]
    conn.execute(import_errors.insert(), records)


def list_imports(engine: Engine, status: str | None = None, limit: int = 50) -> list[dict]:
    query = sa.select(imports).order_by(imports.c.id.desc()).limit(limit)
    if status:
        query = query.where(imports.c.status == status)
    with read_transaction(engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def errors_of(engine: Engine, import_id: int, limit: int | None = None) -> list[dict]:
    query = (sa.select(import_errors.c.line, import_errors.c.column, import_errors.c.raw_value.label("value"),
                       import_errors.c.code, import_errors.c.message)
             .where(import_errors.c.import_id == import_id)
             .order_by(import_errors.c.line, import_errors.c.id))
    if limit:
        query = query.limit(limit)
    with read_transaction(engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def summary(engine: Engine, row: dict) -> dict[str, Any]:
    """The CLI/JSON view of an import: counts, first errors, report path."""
    return {
        "import_id": row["id"], "status": row["status"], "profile": row["profile"],
        "partition_key": row["partition_key"],
        "rows_total": row["rows_total"], "inserted": row["inserted"], "updated": row["updated"],
        "unchanged": row["unchanged"], "invalid": row["invalid"], "encoding": row["encoding"],
        "delimiter": row["delimiter"], "error_report": row["error_report_path"],
        "errors": errors_of(engine, row["id"], limit=100),
        "sheet": row["sheet"], "stage": row["stage"], "message": row["message"], "file": row["file_path"],
        "error_counts": row["error_counts"] or {}, "duplicate_of": row["duplicate_of_id"],
        "timings": row["timings"] or {}, "rows_per_second": row["rows_per_second"], "dry_run": False,
    }
