"""`nightshift import FILE` and `nightshift imports …` (the import log)."""

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.imports.profiles import PROFILES
from pipelines.cli.runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    app_engine,
    current_settings,
    json_option,
    report,
    require_migrated,
    run_job,
)

IMPORT_STATUSES = ["received", "running", "succeeded", "partial", "failed", "interrupted", "duplicate"]


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    profile: str | None
    account: str | None  # the account's slug, as given
    account_id: int | None
    run_config: dict[str, Any]  # what both import jobs take: strict, create_categories


def _account_id(engine: Engine, slug: str | None) -> int | None:
    if slug is None:
        return None
    from nightshift.db.schema import accounts

    with engine.connect() as conn:
        found = conn.execute(sa.select(accounts.c.id).where(accounts.c.slug == slug)).scalar()
    if found is None:
        raise UsageError(f"--account: no account with slug {slug!r}")
    return found


def _print_import(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, default=str))
        return
    label = "DRY RUN — nothing written. " if summary.get("dry_run") else ""
    click.echo(f"{label}import {summary['import_id'] or '-'}: {summary['status']} "
               f"(profile {summary['profile']}, encoding {summary['encoding']}, delimiter {summary['delimiter']!r})")
    click.echo(f"  rows {summary['rows_total']}: inserted {summary['inserted']}, updated {summary['updated']}, "
               f"unchanged {summary['unchanged']}, invalid {summary['invalid']}")
    if summary.get("message"):
        click.echo(f"  {summary['message']}")
    for error in summary["errors"][:10]:
        click.echo(f"  line {error['line']} [{error['column'] or '-'}] {error['code']}: {error['message']}")
    if len(summary["errors"]) > 10 or summary["invalid"] > 10:
        click.echo("  …")
    if summary.get("error_report"):
        click.echo(f"  error report: {summary['error_report']}")


class ProgressLine(logging.Handler):
    """Rows imported so far, redrawn in place on a terminal (records of nightshift.imports.progress)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream, self.started, self.drawn = stream, time.perf_counter(), False

    def emit(self, record: logging.LogRecord) -> None:
        rows = getattr(record, "nightshift_rows", None)
        if rows is None:
            return
        rate = rows / max(time.perf_counter() - self.started, 1e-6)
        self.stream.write(f"\r\x1b[K{record.getMessage()} ({rate:,.0f} rows/s)")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        super().close()


@contextmanager
def progress_line(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from nightshift.imports.service import progress_logger

    handler = ProgressLine(sys.stderr)
    progress_logger.addHandler(handler)
    progress_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        progress_logger.removeHandler(handler)
        handler.close()


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--profile", type=click.Choice(sorted(PROFILES)), help="Default: sub-folder or headers.")
@click.option("--account", help="Slug of the owning account.")
@click.option("--dry-run", is_flag=True, help="Parse, validate and count; write nothing.")
@click.option("--strict", is_flag=True, help="All or nothing: any invalid row and nothing is written.")
@click.option("--create-categories/--no-create-categories", default=None,
              help="Unknown category/sub-category: create it, or reject the row (unknown_category). "
                   "Default: the setting imports.create_categories.")
@json_option
def import_command(path: Path, profile: str | None, account: str | None, dry_run: bool, strict: bool,
                   create_categories: bool | None, as_json: bool) -> None:
    """Import a CSV/Excel file (the same job the upload sensor runs).

    Exit 0 when the import ran (even with invalid rows), 1 when it failed (missing columns, no profile
    matches, too many invalid rows, --strict, an internal error), 2 for bad usage or an unreadable file.
    """
    current_settings()  # a configuration error is reported before anything about the file
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    require_migrated()
    with app_engine() as engine:
        request = ImportRequest(path.resolve(), profile, account, _account_id(engine, account),
                                {"strict": strict, "create_categories": create_categories})
        # On a terminal a progress line replaces Dagster's per-chunk log lines.
        show_progress = sys.stderr.isatty() and not as_json
        quiet = as_json or show_progress
        with progress_line(show_progress):
            if dry_run:
                summary, exit_code = _dry_run(request, quiet=quiet, as_json=as_json)
            else:
                summary, exit_code = _import(engine, request, quiet=quiet, as_json=as_json)
    _print_import(summary, as_json)
    sys.exit(exit_code)


def _dry_run(request: ImportRequest, *, quiet: bool, as_json: bool) -> tuple[dict[str, Any], int]:
    config = {"path": str(request.path), "profile": request.profile, "account_id": request.account_id,
              **request.run_config}
    outcome = run_job("import_dry_run", run_config={"ops": {"dry_run_import": {"config": config}}}, quiet=quiet)
    if not outcome.success:
        report(outcome, as_json, "")
    result = outcome.result.output_for_node("dry_run_import")
    exit_code = EXIT_USAGE if result.unreadable else EXIT_FAILED if result.status == "failed" else EXIT_OK
    return result.as_json(), exit_code


def _import(engine: Engine, request: ImportRequest, *, quiet: bool, as_json: bool) -> tuple[dict[str, Any], int]:
    """Register the file in the import log and run import_job on its partition. Exit code 2 only for an
    unreadable file, 1 for any other failure."""
    from nightshift.imports import intake
    from nightshift.imports import log as import_log

    upload = intake.Upload(request.path, PROFILES[request.profile] if request.profile else None, request.account)
    registered = intake.register(engine, upload, current_settings(), detect_duplicates=False,
                                 account_id=request.account_id)
    outcome = run_job(
        "import_job", partition_key=registered.partition_key,
        dynamic_partition=("import_files", registered.partition_key),
        run_config={"ops": {"import_batch": {"config": request.run_config}}},
        tags={"nightshift/import_id": str(registered.import_id)}, quiet=quiet,
    )
    row = import_log.get(engine, registered.import_id)
    if row["status"] in ("received", "running"):
        # The run died before the import recorded its outcome (infrastructure failure).
        report(outcome, as_json, "")
    # The import log does not record whether the file could be read (the service's FileRejected and
    # ImportRejected both end as failure_kind bad_input, stage received); the asset's dg.Failure says so.
    unreadable = outcome.failure_metadata.get("import_batch", {}).get("unreadable") is True
    exit_code = (EXIT_OK if row["status"] in ("succeeded", "partial")
                 else EXIT_USAGE if unreadable
                 else EXIT_FAILED)
    return import_log.summary(engine, row), exit_code


@click.group()
def imports() -> None:
    """The import log."""


@imports.command("failed-partitions")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of one comma-separated line.")
def imports_failed_partitions(as_json: bool) -> None:
    """Partitions whose latest import failed in a run, for `dagster job backfill -j import_job --partitions`."""
    from nightshift.imports import recovery

    with app_engine() as engine:
        keys = recovery.failed_partition_keys(engine)
    click.echo(json.dumps(keys) if as_json else ",".join(keys))


@imports.command("list")
@click.option("--status", type=click.Choice(IMPORT_STATUSES))
@click.option("--limit", default=50, show_default=True)
@json_option
def imports_list(status: str | None, limit: int, as_json: bool) -> None:
    """Recent imports, newest first."""
    from nightshift.imports import log as import_log
    from nightshift.imports import recovery

    with app_engine() as engine:
        recovery.interrupt_abandoned(engine, current_settings().lang)  # a dead import is never shown running
        rows = import_log.list_imports(engine, status=status, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("no imports")
    for row in rows:
        click.echo(f"{row['id']:>6}  {row['status']:<10} {row['profile'] or '-':<14} {row['rows_total']:>8} rows  "
                   f"+{row['inserted']} ~{row['updated']} ={row['unchanged']} !{row['invalid']}  {row['file_name']}")


@imports.command("show")
@click.argument("import_id", type=int)
@json_option
def imports_show(import_id: int, as_json: bool) -> None:
    """One import: status, counts, errors, report path."""
    from nightshift.imports import log as import_log

    with app_engine() as engine:
        row = import_log.get(engine, import_id)
        if row is None:
            raise UsageError(f"no import with id {import_id}")
        summary = import_log.summary(engine, row)
    _print_import(summary, as_json)
