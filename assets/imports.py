"""import_batch: one dynamic partition per uploaded file, materialised by importing that file."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.config import Settings
from nightshift.db.schema import accounts
from nightshift.imports import log as import_log
from nightshift.imports import recovery
from nightshift.imports.files import sha256_of
from nightshift.imports.messages import message
from nightshift.imports.service import ImportOptions, ImportOutcome, failure_kind, run_import
from nightshift.masking import mask_value
from resources.database import Database
from resources.families import IMPORTS_POOL, family_tags

import_files = dg.DynamicPartitionsDefinition(name="import_files")

PREVIEW_ERRORS = 20
# The run tag that says how the import ended (a partial import is a successful run, green in the UI).
STATUS_TAG = "nightshift/import_status"
# Transient database errors only (re-raised as they are): a bad file and an internal error (a bug) raise
# Failure(allow_retries=False).
RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class ImportConfig(dg.Config):
    strict: bool = False
    create_categories: bool | None = None


def outcome_metadata(outcome: ImportOutcome) -> dict[str, Any]:
    """Stable numeric keys (plotted over time in the UI) and a markdown preview of the first errors, their
    values masked."""
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
    if outcome.sheet:
        metadata["sheet"] = outcome.sheet
    if outcome.error_report:
        metadata["error_report"] = dg.MetadataValue.path(outcome.error_report)
    if outcome.errors:
        lines = ["| line | column | code | value | message |", "|---|---|---|---|---|"]
        for error in outcome.errors[:PREVIEW_ERRORS]:
            value = mask_value(error["value"]).replace("|", "\\|")
            lines.append(f"| {error['line']} | {error['column'] or ''} | {error['code']} | {value} | "
                         f"{error['message'].replace('|', '/')} |")
        metadata["errors_preview"] = dg.MetadataValue.md("\n".join(lines))
    if outcome.preview:
        metadata["changes_preview"] = dg.MetadataValue.md(_changes_table(outcome.preview))
    return metadata


def _changes_table(preview: list[dict[str, Any]]) -> str:
    """What the import did (or would do) to its first rows: the columns that change, their values masked
    (personal data stays out of Dagster's storage; `nightshift import --dry-run --diff` shows them)."""
    def shown(value: Any) -> str:
        return mask_value(value).replace("|", "\\|")

    lines = ["| line | status | changes |", "|---|---|---|"]
    for entry in preview:
        if entry["status"] == "invalid":
            detail = ", ".join(f"{e['column'] or ''}: {e['code']}" for e in entry["errors"])
        else:
            detail = ", ".join(f"{c['column']}: {shown(c['old'])} → {shown(c['new'])}" for c in entry["changes"])
        lines.append(f"| {entry['line']} | {entry['status']} | {detail} |")
    return "\n".join(lines)


def _account_slug(engine: Engine, account_id: int | None) -> str:
    if account_id is None:
        return ""
    with engine.connect() as conn:
        return conn.execute(sa.select(accounts.c.slug).where(accounts.c.id == account_id)).scalar() or ""


def _ui_reason(outcome: ImportOutcome, config: ImportConfig, settings: Settings) -> str:
    """Why a file was refused, with what to do in the UI's terms (the core's text names the CLI's options).
    A readable file refused without a profile is one whose header no profile matches: a run of the UI
    or a sensor takes its profile from the upload sub-folder, which names a known profile or none."""
    lang = settings.lang
    if outcome.profile is None and not outcome.unreadable:
        return message("ui_no_profile_matches", lang, file=Path(outcome.file_path or "").name,
                       uploads=settings.uploads_dir)
    if config.strict and outcome.invalid and not outcome.inserted:
        return message("ui_strict_abort", lang, invalid=outcome.invalid)
    return outcome.message or ""


def _tag_outcome(context: dg.AssetExecutionContext, status: str) -> None:
    context.instance.add_run_tags(context.run.run_id, {STATUS_TAG: status})


@contextmanager
def _failure_tagged(context: dg.AssetExecutionContext) -> Iterator[None]:
    """A step that fails for good tags its run `failed`; a transient error the retry policy tries again
    does not (the retry's outcome will)."""
    try:
        yield
    except Exception as exc:
        if failure_kind(exc) != "transient" or context.retry_number >= RETRY_POLICY.max_retries:
            _tag_outcome(context, "failed")
        raise


@dg.asset(
    partitions_def=import_files,
    check_specs=[dg.AssetCheckSpec("invalid_row_rate", asset="import_batch",
                                   description="WARN when rows were rejected (a partial import); the rate is in "
                                               "its metadata")],
    retry_policy=RETRY_POLICY,
    op_tags=family_tags("imports"),
    pool=IMPORTS_POOL,  # the run limit of dagster.yaml also for runs without the family tag (asset backfills)
    kinds={"python", "sql"},
    group_name="imports",
    description="Imports one uploaded CSV/Excel file (partition = file) into the app database.",
)
def import_batch(context: dg.AssetExecutionContext, config: ImportConfig, database: Database,
                 settings: dg.ResourceParam[Settings]) -> dg.MaterializeResult:
    with _failure_tagged(context):
        return _materialize(context, config, database, settings)


def _materialize(context: dg.AssetExecutionContext, config: ImportConfig, database: Database,
                 settings: Settings) -> dg.MaterializeResult:
    lang = settings.lang
    row = import_log.by_partition(database.engine, context.partition_key)
    if row is None:
        raise dg.Failure(message("ui_no_import_registered", lang, partition=context.partition_key),
                         allow_retries=False)
    path = Path(row["file_path"])
    provenance = {"file_name": row["file_name"], "account": _account_slug(database.engine, row["account_id"])}
    if not path.exists():
        raise dg.Failure(message("ui_file_gone", lang, import_id=row["id"], path=path, uploads=settings.uploads_dir),
                         metadata={"import_id": row["id"], **provenance}, allow_retries=False)
    with recovery.lease(database.engine, row["id"]):
        outcome = _import(context, config, database, settings, row, path)
    metadata = {**outcome_metadata(outcome), **provenance}
    if outcome.status == "failed":
        # unreadable: the file itself cannot be read (the CLI exits 2), as opposed to a file read and refused.
        raise dg.Failure(
            description=message("ui_import_failed", lang, import_id=outcome.import_id, file=row["file_name"],
                                reason=_ui_reason(outcome, config, settings)),
            metadata={**metadata, "failure_kind": outcome.failure_kind or "bad_input",
                      "unreadable": outcome.unreadable},
            allow_retries=False,
        )
    context.log.info(f"import {outcome.import_id} {outcome.status}: {outcome.message}")
    _tag_outcome(context, outcome.status)
    rate = outcome.invalid / outcome.rows_total if outcome.rows_total else 0.0
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[dg.AssetCheckResult(
            check_name="invalid_row_rate", passed=outcome.status != "partial", severity=dg.AssetCheckSeverity.WARN,
            metadata={"invalid_rate": dg.MetadataValue.float(round(rate, 4)), "invalid": outcome.invalid},
        )],
    )


def _import(context: dg.AssetExecutionContext, config: ImportConfig, database: Database, settings: Settings,
            row: dict, path: Path) -> ImportOutcome:
    """The import of the partition's file, under its lease."""
    rerun = {}
    if row["status"] != "received":  # a re-execution or backfill: the file may have been fixed in place
        rerun = {"sha256": sha256_of(path), "size_bytes": path.stat().st_size}
    # `running` with the run's id in one write, under the lease: a row naming this run never looks like an
    # earlier failure the sensors would interrupt or retry.
    import_log.update_status(database.engine, row["id"], status="running", dagster_run_id=context.run.run_id,
                             **rerun)
    context.log.info(f"import {row['id']}: {path.name} (profile {row['profile'] or 'detected from headers'})")

    def progress(rows: int) -> None:
        context.log.info(f"import {row['id']}: {rows} rows read and validated")

    try:
        return run_import(
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
            description=message("ui_internal_error", settings.lang, import_id=row["id"],
                                error=f"{type(exc).__name__}: {exc}"),
            metadata={"import_id": row["id"], "failure_kind": "internal", "error": f"{type(exc).__name__}: {exc}"},
            allow_retries=False,
        ) from exc


import_job = dg.define_asset_job(
    "import_job", selection=[import_batch], tags=family_tags("imports"),
    description="Import one uploaded file (one partition of import_batch).",
)
