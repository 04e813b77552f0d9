"""import_batch: one dynamic partition per uploaded file, materialised by importing that file."""

from pathlib import Path
from typing import Any

import dagster as dg

from nightshift.config import Settings
from nightshift.imports import log as import_log
from nightshift.imports.files import sha256_of
from nightshift.imports.service import ImportOptions, ImportOutcome, failure_kind, run_import
from nightshift.masking import mask_text
from resources.database import Database
from resources.families import IMPORTS_POOL, family_tags

import_files = dg.DynamicPartitionsDefinition(name="import_files")

INVALID_RATE_WARN = 0.05
PREVIEW_ERRORS = 20


class ImportConfig(dg.Config):
    strict: bool = False
    create_categories: bool | None = None


def outcome_metadata(outcome: ImportOutcome) -> dict[str, Any]:
    """Stable numeric keys (plotted over time in the UI) and a markdown preview of the first errors."""
    metadata: dict[str, Any] = {
        "import_id": outcome.import_id or 0,
        "status": outcome.status,
        "profile": outcome.profile or "unknown",
        "rows_total": outcome.rows_total,
        "inserted": outcome.inserted,
        "updated": outcome.updated,
        "unchanged": outcome.unchanged,
        "invalid": outcome.invalid,
        "rows_per_second": dg.MetadataValue.float(float(outcome.rows_per_second or 0.0)),
        "duration_s": dg.MetadataValue.float(float(outcome.timings.get("total_s", 0.0))),
        "encoding": outcome.encoding or "",
        "delimiter": outcome.delimiter or "",
    }
    if outcome.error_report:
        metadata["error_report"] = dg.MetadataValue.path(outcome.error_report)
    if outcome.errors:
        lines = ["| line | column | code | value | message |", "|---|---|---|---|---|"]
        for error in outcome.errors[:PREVIEW_ERRORS]:
            value = mask_text(str(error["value"] or ""))[:60].replace("|", "\\|")
            lines.append(f"| {error['line']} | {error['column'] or ''} | {error['code']} | {value} | "
                         f"{error['message'].replace('|', '/')} |")
        metadata["errors_preview"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


@dg.asset(
    partitions_def=import_files,
    check_specs=[dg.AssetCheckSpec("invalid_row_rate", asset="import_batch",
                                   description=f"WARN when more than {INVALID_RATE_WARN:.0%} of rows are invalid")],
    # Transient database errors only (re-raised as they are): a bad file and an internal error (a bug) raise
    # Failure(allow_retries=False).
    retry_policy=dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    op_tags=family_tags("imports"),
    pool=IMPORTS_POOL,  # the run limit of dagster.yaml also for runs without the family tag (asset backfills)
    kinds={"python", "sql"},
    group_name="imports",
    description="Imports one uploaded CSV/Excel file (partition = file) into the app database.",
)
def import_batch(context: dg.AssetExecutionContext, config: ImportConfig, database: Database,
                 settings: dg.ResourceParam[Settings]) -> dg.MaterializeResult:
    row = import_log.by_partition(database.engine, context.partition_key)
    if row is None:
        raise dg.Failure(f"no import is registered for partition {context.partition_key!r}", allow_retries=False)
    path = Path(row["file_path"])
    if not path.exists():
        raise dg.Failure(f"import {row['id']}: the file is no longer at {path} (moved or deleted); upload it again",
                         allow_retries=False)
    rerun = {}
    if row["status"] != "received":  # a re-execution or backfill: the file may have been fixed in place
        rerun = {"sha256": sha256_of(path), "size_bytes": path.stat().st_size}
    import_log.update_status(database.engine, row["id"], dagster_run_id=context.run.run_id, **rerun)
    context.log.info(f"import {row['id']}: {path.name} (profile {row['profile'] or 'detected from headers'})")

    def progress(rows: int) -> None:
        context.log.info(f"import {row['id']}: {rows} rows read and validated")

    try:
        outcome = run_import(
            database.engine, path, settings,
            ImportOptions(profile=row["profile"], account_id=row["account_id"], strict=config.strict,
                          create_categories=config.create_categories),
            import_id=row["id"], progress=progress,
            move_file=path.resolve().is_relative_to(settings.data_dir.resolve()),
        )
    except Exception as exc:
        # run_import logged the failure and re-raised it. Only a transient database error is worth another
        # try (the retry policy); a bug fails the step at once, the original exception as the cause.
        if failure_kind(exc) == "transient":
            raise
        raise dg.Failure(
            description=f"import {row['id']} failed on an internal error: {type(exc).__name__}: {exc}",
            metadata={"import_id": row["id"], "failure_kind": "internal", "error": f"{type(exc).__name__}: {exc}"},
            allow_retries=False,
        ) from exc
    metadata = outcome_metadata(outcome)
    if outcome.status == "failed":
        # unreadable: the file itself cannot be read (the CLI exits 2), as opposed to a file read and refused.
        raise dg.Failure(description=f"import {outcome.import_id} failed: {outcome.message}",
                         metadata={**metadata, "failure_kind": outcome.failure_kind or "bad_input",
                                   "unreadable": outcome.unreadable},
                         allow_retries=False)
    context.log.info(f"import {outcome.import_id} {outcome.status}: {outcome.message}")
    rate = outcome.invalid / outcome.rows_total if outcome.rows_total else 0.0
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[dg.AssetCheckResult(
            check_name="invalid_row_rate", passed=rate <= INVALID_RATE_WARN, severity=dg.AssetCheckSeverity.WARN,
            metadata={"invalid_rate": dg.MetadataValue.float(round(rate, 4)), "invalid": outcome.invalid},
        )],
    )


import_job = dg.define_asset_job(
    "import_job", selection=[import_batch], tags=family_tags("imports"),
    description="Import one uploaded file (one partition of import_batch).",
)
