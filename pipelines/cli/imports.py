"""`nightshift import FILE` and `nightshift imports …` (the import log)."""

import dataclasses
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click
from sqlalchemy.engine import Engine

from nightshift.db.schema import IMPORT_IN_PROGRESS
from nightshift.imports.messages import message
from nightshift.imports.profiles import PROFILES
from pipelines.cli.runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    account_id_of,
    app_engine,
    current_settings,
    echo_json,
    json_option,
    report,
    require_migrated,
    run_job,
    verbose_option,
)

IMPORT_STATUSES = ["received", "running", "succeeded", "partial", "failed", "interrupted", "duplicate"]
PRINTED_ERRORS = 10  # of the summary's first errors, in the text output
DIFF_ROWS = 20  # rows --diff lists by default


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    profile: str | None
    account: str | None  # the account's slug, as given
    account_id: int | None
    run_config: dict[str, Any]  # what both import jobs take: strict, create_categories


def _text(code: str, **params: object) -> str:
    return message(code, current_settings().lang, **params)


def _counted(code: str, count: int) -> str:
    """`code`'s singular or plural message: French counts 0 and 1 in the singular, English only 1."""
    lang = current_settings().lang
    singular = count <= 1 if lang == "fr" else count == 1
    return message(f"{code}_{'one' if singular else 'other'}", lang, count=count)


def _rate(rows_per_second: float) -> str:
    return _text("cli_rate", rate=rows_per_second)  # as the JSON gives it


def _file_name(summary: dict[str, Any]) -> str:
    return Path(summary["file"]).name if summary["file"] else "-"


def _describe(summary: dict[str, Any]) -> list[str]:
    """The summary as text lines: what applies to this import only (no sheet for a CSV, no encoding for Excel)."""
    label = _text("cli_dry_run") if summary["dry_run"] else _text("cli_import", import_id=summary["import_id"])
    details = [_text("cli_profile", profile=summary["profile"])] if summary["profile"] else []
    if summary["sheet"]:
        details.append(_text("cli_sheet", sheet=summary["sheet"]))
    if summary["encoding"]:
        details.append(_text("cli_encoding", encoding=summary["encoding"]))
    if summary["delimiter"]:
        details.append(_text("cli_delimiter", delimiter=summary["delimiter"]))
    if summary["duplicate_of"]:
        details.append(_text("cli_duplicate_of", import_id=summary["duplicate_of"]))
    heading = _text("cli_heading", label=label, file=_file_name(summary),
                    status=_text(f"cli_status_{summary['status']}"))
    lines = [" — ".join([heading, ", ".join(details)]) if details else heading]
    status, text = summary["status"], summary["message"] or ""
    failed = summary["kind"] is not None
    if failed and text:
        lines.insert(0, text)  # why it failed, first and once
    if summary["rows_total"] or status in ("succeeded", "partial"):
        counts = _text("cli_counts", rows=_counted("cli_rows", summary["rows_total"]),
                       **{key: _counted(f"cli_{key}", summary[key])
                          for key in ("inserted", "updated", "unchanged", "invalid")})
        if summary["rows_per_second"]:
            counts += f" ({_rate(summary['rows_per_second'])})"
        lines.append(f"  {counts}")
    if status in ("succeeded", "partial"):
        # The message of a merged import repeats the counts first; what follows them is news.
        text = text.partition("; ")[2]
    if text and not failed:
        lines.append(f"  {text}")
    errors = summary.get("errors") or []
    for error in errors[:PRINTED_ERRORS]:
        lines.append("  " + _text("cli_error_line", line=error["line"], column=error["column"] or "-",
                                  error_code=error["code"], message=error["message"]))
    total = sum(summary["error_counts"].values()) or len(errors)
    if total > PRINTED_ERRORS:
        lines.append("  " + _text("cli_more_errors", shown=PRINTED_ERRORS, total=total))
    if summary["error_report"]:
        lines.append("  " + _text("cli_error_report", path=summary["error_report"]))
    if summary.get("preview"):
        lines.append("  " + _text("cli_preview_heading", count=len(summary["preview"])))
        lines.extend("    " + _preview_line(entry) for entry in summary["preview"])
    return lines


def _preview_line(entry: dict[str, Any]) -> str:
    line, status = entry["line"], entry["status"]
    if status == "changed":
        empty = _text("cli_preview_empty")
        changes = "; ".join(_text("cli_preview_change", column=c["column"],
                                  old=empty if c["old"] is None else c["old"],
                                  new=empty if c["new"] is None else c["new"]) for c in entry["changes"])
        return _text("cli_preview_changed", line=line, changes=changes)
    if status == "invalid":
        errors = "; ".join(f"[{e['column'] or '-'}] {e['message']}" for e in entry["errors"])
        return _text("cli_preview_invalid", line=line, errors=errors)
    return _text(f"cli_preview_{status}", line=line)


def _print_import(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(summary)
    else:
        click.echo("\n".join(_describe(summary)))


class ProgressLine(logging.Handler):
    """Rows imported so far and the import's rate, redrawn in place on a terminal (records of
    nightshift.imports.progress); cleared at the end, where the summary gives the final figures."""

    def __init__(self, stream: TextIO, file_name: str) -> None:
        super().__init__(logging.INFO)
        self.stream, self.file_name, self.drawn = stream, file_name, False

    def emit(self, record: logging.LogRecord) -> None:
        rows = getattr(record, "nightshift_rows", None)
        if rows is None:
            return
        rate = getattr(record, "nightshift_rows_per_second", None)
        text = _text("cli_progress", file=self.file_name, rows=_counted("cli_rows", rows),
                     rate=_rate(rate) if rate else "…")
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        super().close()


@contextmanager
def progress_line(enabled: bool, file_name: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    from nightshift.imports.service import progress_logger

    handler = ProgressLine(sys.stderr, file_name)
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
@click.option("--diff", is_flag=True, help="With --dry-run: what the import would do to each of the first rows "
                                           "(new, changed: column old → new, unchanged, invalid).")
@click.option("--diff-rows", default=DIFF_ROWS, show_default=True, type=click.IntRange(min=1),
              help="How many rows --diff lists.")
@click.option("--strict", is_flag=True, help="All or nothing: any invalid row and nothing is written.")
@click.option("--map", "column_map", multiple=True, metavar="HEADER=COLUMN",
              help="Read the file's header HEADER (as the file writes it) as the profile's column COLUMN, for "
                   "headers that match no accepted spelling; repeatable.")
@click.option("--create-categories/--no-create-categories", default=None,
              help="Unknown category/sub-category: create it, or reject the row (unknown_category). "
                   "Default: the setting imports.create_categories.")
@verbose_option
@json_option
def import_command(path: Path, profile: str | None, account: str | None, dry_run: bool, diff: bool, diff_rows: int,
                   strict: bool, column_map: tuple[str, ...], create_categories: bool | None, verbose: bool,
                   as_json: bool) -> None:
    """Import a CSV/Excel file (the same job the upload sensor runs).

    Exit 0 when the import ran (even with invalid rows), 1 when it failed (missing columns, no profile
    matches, too many invalid rows, --strict, an internal error), 2 for bad usage or an unreadable file.
    """
    current_settings()  # a configuration error is reported before anything about the file
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if diff and not dry_run:
        raise UsageError(_text("cli_diff_needs_dry_run"))
    _use_column_map(column_map, profile)
    require_migrated()
    with app_engine() as engine:
        request = ImportRequest(path.resolve(), profile, account, account_id_of(engine, account),
                                {"strict": strict, "create_categories": create_categories})
        # On a terminal, unless --verbose shows the run's log, a progress line tells how far the import is.
        with progress_line(sys.stderr.isatty() and not as_json and not verbose, path.name):
            if dry_run:
                summary, exit_code = _dry_run(request, diff_rows if diff else 0, verbose=verbose, as_json=as_json)
            else:
                summary, exit_code = _import(engine, request, verbose=verbose, as_json=as_json)
    _print_import(summary, as_json)
    if as_json and summary["kind"] is not None:
        click.echo(summary["message"], err=True)  # stdout is for the JSON; the reason is for whoever watches
    elif summary["kind"] == "transient" and summary["run_id"] and not verbose:
        click.echo("  " + _text("cli_verbose_hint", run_id=summary["run_id"]))
    sys.exit(exit_code)


def _use_column_map(options: tuple[str, ...], profile: str | None) -> None:
    """The command's settings with its `--map`: the import job reads them (the CLI runs it in this process
    on current_settings()), as it reads an account's imports.column_maps."""
    from nightshift.imports.column_maps import ColumnMapRefused, check_column_maps, parse_map_options

    settings = current_settings()
    check_column_maps(settings.imports.column_maps)  # a configuration error, before anything about the file
    try:
        column_map = parse_map_options(options, PROFILES[profile] if profile else None, settings.lang)
    except ColumnMapRefused as refused:
        raise UsageError(refused.message) from None
    click.get_current_context().find_root().obj = dataclasses.replace(settings, column_map=column_map)


def _dry_run(request: ImportRequest, preview_rows: int, *, verbose: bool,
             as_json: bool) -> tuple[dict[str, Any], int]:
    from nightshift.imports import log as import_log

    config = {"path": str(request.path), "profile": request.profile, "account_id": request.account_id,
              "preview_rows": preview_rows, **request.run_config}
    outcome = run_job("import_dry_run", run_config={"ops": {"dry_run_import": {"config": config}}},
                      verbose=verbose)
    if not outcome.success:
        report(outcome, as_json, "")
    result = outcome.result.output_for_node("dry_run_import")
    exit_code = EXIT_USAGE if result.unreadable else EXIT_FAILED if result.status == "failed" else EXIT_OK
    # The outcome under the import log's column names: a dry run is summarised like a logged import.
    row = {**dataclasses.asdict(result), "id": None, "error_report_path": result.error_report}
    summary = import_log.summary(row, result.errors)
    if preview_rows:
        summary["preview"] = result.preview
    return summary, exit_code


def _import(engine: Engine, request: ImportRequest, *, verbose: bool,
            as_json: bool) -> tuple[dict[str, Any], int]:
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
        tags={"nightshift/import_id": str(registered.import_id)}, verbose=verbose,
    )
    row = import_log.get(engine, registered.import_id)
    if row["status"] in IMPORT_IN_PROGRESS:
        # The run died before the import recorded its outcome (infrastructure failure).
        report(outcome, as_json, "")
    # The import log does not record whether the file could be read (the service's FileRejected and
    # ImportRejected both end as failure_kind bad_input, stage received); the asset's dg.Failure says so.
    unreadable = outcome.failure_metadata.get("import_batch", {}).get("unreadable") is True
    exit_code = (EXIT_OK if row["status"] in ("succeeded", "partial")
                 else EXIT_USAGE if unreadable
                 else EXIT_FAILED)
    return import_log.shown(engine, row), exit_code


@click.group()
def imports() -> None:
    """The import log."""


def _columns(headings: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Lines of a table under its headings, each column as wide as its widest cell (`right`: numbers)."""
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]
    return ["  ".join(cell.rjust(width) if index in right else cell.ljust(width)
                      for index, (cell, width) in enumerate(zip(line, widths, strict=True))).rstrip()
            for line in [headings, *rows]]


@imports.command("failed-partitions")
@click.option("--kind", type=click.Choice(["transient", "data"]),
              help="Only the failures of this kind, one line each with the reason.")
@click.option("--all", "show_all", is_flag=True, help="Every failed partition, one line each with the reason.")
@json_option
def imports_failed_partitions(kind: str | None, show_all: bool, as_json: bool) -> None:
    """Partitions whose latest import failed in a run. Without options: those a backfill can fix (transient
    failures, and data failures whose file was fixed where it is kept), in one comma-separated line for
    `dagster job backfill -j import_job --partitions`."""
    from nightshift.imports import log as import_log

    if kind and show_all:
        raise UsageError("either --kind or --all")
    with app_engine() as engine:
        failed = import_log.failed_partitions(engine)
    if kind:
        selected = [f for f in failed if f["kind"] == kind]
    elif show_all:
        selected = failed
    else:
        selected = [f for f in failed if f["backfill"]]
    if as_json:
        echo_json(selected)
    elif kind or show_all:
        _print_failed_partitions(selected)
    else:
        click.echo(",".join(f["partition_key"] for f in selected))
        left = sum(1 for f in failed if not f["backfill"])
        if left:
            click.echo(_counted("cli_data_failures_left", left), err=True)


def _print_failed_partitions(failed: list[dict[str, Any]]) -> None:
    if not failed:
        click.echo(_text("cli_no_failed_partitions"))
        return
    headings = [_text(f"cli_column_{c}") for c in ("partition", "id", "kind", "backfill", "file", "reason")]
    rows = [[f["partition_key"], str(f["import_id"]), _text(f"cli_kind_{f['kind']}"),
             _text("cli_yes" if f["backfill"] else "cli_no"), _file_name(f), f["message"] or ""] for f in failed]
    click.echo("\n".join(_columns(headings, rows, right={1})))


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
        listed = [import_log.summary(row) for row in import_log.list_imports(engine, status=status, limit=limit)]
    if as_json:
        echo_json(listed)
        return
    if not listed:
        click.echo(_text("cli_no_imports"))
        return
    counts = ("rows_total", "inserted", "updated", "unchanged", "invalid")
    headings = [_text(f"cli_column_{c}") for c in ("id", "status", "profile", "rows", *counts[1:], "file")]
    rows = [[str(s["import_id"]), _text(f"cli_status_{s['status']}"), s["profile"] or "-",
             *(str(s[key]) for key in counts), _file_name(s)] for s in listed]
    click.echo("\n".join(_columns(headings, rows, right={0, 3, 4, 5, 6, 7})))


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
        summary = import_log.shown(engine, row)
    _print_import(summary, as_json)


@imports.command("undo")
@click.argument("import_id", type=int)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted and kept; delete nothing.")
@json_option
def imports_undo(import_id: int, dry_run: bool, as_json: bool) -> None:
    """Delete the rows an import created that no later import changed and no other row points to; say which
    of its rows stay (changed since, pointed to, or only updated: earlier values are not kept)."""
    from nightshift.imports.undo import UndoRefused, undo_import

    require_migrated()
    with app_engine() as engine:
        try:
            outcome = undo_import(engine, import_id, dry_run=dry_run)
        except UndoRefused as refused:
            raise UsageError(_text(refused.code, **refused.params)) from None
    if as_json:
        echo_json(outcome.as_dict())
        return
    deleted = _counted("undo_deleted", outcome.deleted_total)
    if outcome.deleted:
        deleted += " (" + ", ".join(f"{table} {count}" for table, count in outcome.deleted.items()) + ")"
    lines = [_text("undo_dry_run" if dry_run else "undo_done", import_id=import_id, deleted=deleted)]
    lines.extend("  " + _text(f"undo_kept_{kept.reason}", table=kept.table, count=kept.count,
                              keys=", ".join(kept.keys) + (" …" if kept.count > len(kept.keys) else ""))
                 for kept in outcome.kept)
    click.echo("\n".join(lines))
