"""The import log (`imports` + `import_errors`): one row per received file, its stages and outcome."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightshift.db.engine import read_transaction, write_transaction
from nightshift.db.schema import IMPORT_ENDED_WITHOUT_ROWS, import_errors, imports
from nightshift.imports import recovery
from nightshift.imports.files import sha256_of

STAGES = ("received", "parsed", "validated", "merged", "done")
MAX_DETAILED_ERRORS = 10_000
SHOWN_ERRORS = 100  # detailed errors in a summary (the report has them all)


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


def rows_per_second(rows: int, seconds: float) -> float | None:
    """The import rate: rows since the import started over the seconds since (one figure for the progress
    line, the log, the JSON and the run's metadata)."""
    return round(rows / seconds, 1) if seconds > 0 else None


def failure_class(row: Mapping[str, Any]) -> str | None:
    """What a failed import needs, from its failure_kind: `data` (bad_input: no profile matched, missing
    columns, too many invalid rows, unreadable file: a fixed file) or `transient` (interrupted, database
    unreachable, crashed run, internal error: the file is not at fault, running it again can succeed).
    None for an import that did not fail."""
    if row["status"] not in IMPORT_ENDED_WITHOUT_ROWS:
        return None
    return "data" if row.get("failure_kind") == "bad_input" else "transient"


def summary(row: Mapping[str, Any], errors: list[dict] | None = None) -> dict[str, Any]:
    """The one view of an import that `nightshift import`, `imports list` and `imports show` print, in JSON
    and as text. `row` holds the columns of the imports table (a dry run's outcome, never logged, gives those
    it has); `errors` the first detailed errors (lists leave them out)."""
    view = {
        "import_id": row.get("id"), "file": row.get("file_path"), "status": row["status"],
        "dry_run": bool(row.get("dry_run")), "kind": failure_class(row), "message": row.get("message"),
        "profile": row.get("profile"), "sheet": row.get("sheet"), "encoding": row.get("encoding"),
        "delimiter": row.get("delimiter"),
        "rows_total": row["rows_total"], "inserted": row["inserted"], "updated": row["updated"],
        "unchanged": row["unchanged"], "invalid": row["invalid"], "rows_per_second": row.get("rows_per_second"),
        "error_report": row.get("error_report_path"), "error_counts": row.get("error_counts") or {},
        "duplicate_of": row.get("duplicate_of_id"), "stage": row.get("stage"),
        "partition_key": row.get("partition_key"), "run_id": row.get("dagster_run_id"),
        "timings": row.get("timings") or {},
        "created_at": row.get("created_at"), "finished_at": row.get("finished_at"),
    }
    if errors is not None:
        view["errors"] = errors
    return view


def shown(engine: Engine, row: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of one logged import with its first SHOWN_ERRORS detailed errors."""
    return summary(row, errors_of(engine, row["id"], limit=SHOWN_ERRORS))


def failed_partitions(engine: Engine) -> list[dict[str, Any]]:
    """The summary of the latest import of each failed partition (recovery.failed_partition_keys), with
    `backfill`: whether a backfill of it can succeed. A transient failure can; a data failure only once its
    file was fixed where it was kept (its content differs from the one that failed)."""
    failed = []
    for row in recovery.failed_partition_rows(engine):
        view = summary(row)
        view["backfill"] = view["kind"] == "transient" or _changed_since(row)
        failed.append(view)
    return failed


def _changed_since(row: Mapping[str, Any]) -> bool:
    """Whether the kept file differs from the one that failed: its size first, its hash only if that agrees."""
    path = Path(row["file_path"]) if row["file_path"] else None
    if path is None or not path.is_file():
        return False
    return path.stat().st_size != row["size_bytes"] or sha256_of(path) != row["sha256"]
