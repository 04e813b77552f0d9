"""`nightshift`: the operator CLI.

Convention for every command that does work: it runs the same Dagster job the schedules and sensors
run, on the instance in DAGSTER_HOME (so the run shows in the UI), then prints a human summary or, with
--json, one JSON object. Exit codes: 0 success, 1 the job failed, 2 bad usage or an unreadable input file.
"""

import atexit
import gc
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import click
import sqlalchemy.exc

from nightshift.config import ConfigError, Settings, load_settings
from nightshift.db import migrate
from nightshift.imports.profiles import PROFILES as _PROFILES

PROFILE_NAMES = tuple(_PROFILES)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(click.ClickException):
    exit_code = EXIT_USAGE


@dataclass
class JobOutcome:
    job: str
    run_id: str
    success: bool
    duration_s: float
    error: str | None = None
    step_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: Any = None  # the ExecuteInProcessResult, for commands that read a step's output
    # Metadata of the dg.Failure each failed step raised (step key → metadata), e.g. why an import failed.
    failure_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "run_id": self.run_id,
            "status": "success" if self.success else "failure",
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "steps": self.step_metadata,
        }


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None


def dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to the project's .dagster/, holding the instance's dagster.yaml."""
    default_home = (PROJECT_ROOT / ".dagster").resolve()
    home = Path(os.environ.get("DAGSTER_HOME") or default_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml, project_yaml = home / "dagster.yaml", PROJECT_ROOT / "dagster.yaml"
    # The project's own instance follows dagster.yaml; an operator's DAGSTER_HOME is never overwritten.
    if not instance_yaml.exists() or (
        home == default_home and instance_yaml.read_bytes() != project_yaml.read_bytes()
    ):
        shutil.copyfile(project_yaml, instance_yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class ExplainedFailures(logging.Filter):
    """Console records of CLI runs: a dg.Failure raised on purpose (no underlying exception) is explained by
    its message, so the record shows that message instead of Dagster's stack trace. Every other error (a
    bug, a database outage, a Failure raised from an exception) keeps its full trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        metadata = getattr(record, "dagster_meta", None) or {}
        event = metadata.get("dagster_event")
        error = getattr(getattr(event, "event_specific_data", None), "error", None)
        if error is not None and explained_failure(error):
            head = str(record.msg).split("\n\n", 1)[0]
            # error.message is "<module>.Failure: <description>"
            record.msg, record.args = f"{head}\n{error.message.strip().split(': ', 1)[-1]}", ()
        return True


def explained_failure(error: Any) -> bool:
    """A SerializableErrorInfo of a dg.Failure raised on purpose, not from (or while handling) an exception."""
    return error.cls_name == "Failure" and error.cause is None and error.context is None


def cli_console_logger():
    """Dagster's colored console logger with the ExplainedFailures filter: the console logger of CLI runs."""
    import dagster as dg

    @dg.logger(dg.colored_console_logger.config_schema,
               description="The colored console logger; a deliberate dg.Failure shows its message, no stack trace.")
    def cli_console(init_context: dg.InitLoggerContext) -> logging.Logger:
        console = dg.colored_console_logger.logger_fn(init_context)
        console.addFilter(ExplainedFailures())
        return console

    return cli_console


def run_job(job_name: str, *, run_config: dict | None = None, tags: dict[str, str] | None = None,
            partition_key: str | None = None, dynamic_partition: tuple[str, str] | None = None,
            quiet: bool = False) -> JobOutcome:
    """Run a job of the code location in this process, recorded on the DAGSTER_HOME instance."""
    dagster_home()
    import dagster as dg  # deferred: `nightshift db ...` must not pay for loading Dagster

    from pipelines.definitions import defs

    job = defs.resolve_job_def(job_name)
    job = job.with_logger_defs({**job.loggers, "console": cli_console_logger()})
    run_config = dict(run_config or {})
    # Dagster's console log is the progress display; --json keeps the terminal to warnings.
    run_config["loggers"] = {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}
    _collect_from_job_start()
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        if dynamic_partition is not None:
            instance.add_dynamic_partitions(dynamic_partition[0], [dynamic_partition[1]])
        result = job.execute_in_process(
            instance=instance,
            run_config=run_config,
            tags={"nightshift/launched_by": "cli", **(tags or {})},
            partition_key=partition_key,
            raise_on_error=False,
        )
    steps: dict[str, dict[str, Any]] = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT" and event.step_key:
            entries = event.event_specific_data.metadata or {}
            steps[event.step_key] = {key: _plain(value) for key, value in entries.items()}
    error, failure_metadata = None, {}
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        descriptions = []
        for event in failures:
            user_failure = event.event_specific_data.user_failure_data
            if user_failure is not None and event.step_key:
                failure_metadata[event.step_key] = {k: _plain(v) for k, v in (user_failure.metadata or {}).items()}
            failure = event.event_specific_data.error
            if failure is None:
                continue
            user_error = failure.cause if failure.cls_name == "DagsterUserCodeExecutionError" else None
            descriptions.append((user_error or failure).message.strip())
        error = "; ".join(descriptions) or "the run failed (see the run in the Dagster UI)"
    return JobOutcome(job_name, result.run_id, result.success, time.perf_counter() - started, error, steps,
                      result, failure_metadata)


def _plain(metadata_value: Any) -> Any:
    value = getattr(metadata_value, "value", metadata_value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def report(outcome: JobOutcome, as_json: bool, human: str) -> None:
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, default=str))
    elif outcome.success:
        click.echo(human)
        click.echo(f"run {outcome.run_id} ({outcome.duration_s:.1f} s) — open it in the Dagster UI")
    else:
        click.echo(f"{outcome.job} FAILED: {outcome.error}", err=True)
        click.echo(f"run {outcome.run_id} — see its logs in the Dagster UI", err=True)
    sys.exit(EXIT_OK if outcome.success else EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("nightshift"), "--version", prog_name="nightshift")
def main() -> None:
    """nightshift: batch work (imports, AI content, quotas, notifications, retention) on Dagster."""


def run() -> None:
    """The `nightshift` console script. It starts without the cyclic garbage collector: loading Dagster,
    pandas and our modules set off full collections that found nothing to free (about 0.2 s); a job
    turns it back on as it starts (`_collect_from_job_start`), without ever walking what was loaded.
    Commands that run no job (migrations, the import log) are short and run without it.
    Its process ends with the command: at exit, the collector need not walk everything Dagster and
    pandas loaded (about 0.7 s of every command that ran a job); the memory goes back with the process.
    Objects caught in reference cycles are then not finalized: nothing may rely on that to flush or close
    (files, the Dagster instance and database engines are closed explicitly)."""
    gc.disable()
    atexit.register(gc.freeze)
    main()


def _collect_from_job_start() -> None:
    """In the console script (`run`), where startup ran without the cyclic collector: what startup loaded
    is frozen (collections never walk it) and collections resume for what the job allocates. Elsewhere
    (tests, a Python caller) the collector was never off and nothing changes."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@main.command()
def init() -> None:
    """Prepare a machine: data folders, DAGSTER_HOME with dagster.yaml, migrations applied, the
    instance's concurrency pools at their dagster.yaml limit."""
    settings = settings_or_exit()
    settings.ensure_data_dirs()
    home = dagster_home()
    _upgrade(settings)
    _initialize_pools()
    click.echo(f"data folder {settings.data_dir.resolve()} ready (drop files in {settings.uploads_dir})")
    click.echo(f"DAGSTER_HOME {home}")


def _initialize_pools() -> None:
    """Give each pool of pipelines.tags.POOLS the instance's default limit (dagster.yaml
    `concurrency.pools.default_limit`) now: the run queue only limits a pool it already knows."""
    import dagster as dg

    from pipelines.tags import POOLS, initialize_pools

    with dg.DagsterInstance.get() as instance:
        initialize_pools(instance)
        limit = instance.global_op_concurrency_default_limit
    click.echo(f"concurrency pools {', '.join(POOLS)}: at most {limit} runs each at once")


@main.group()
def db() -> None:
    """Database schema migrations."""


def _upgrade(settings: Settings, revision: str = "head") -> None:
    try:
        migrate.upgrade(settings.database_url, revision)
    except sqlalchemy.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.orig}") from None
    _print_revision(settings)


def _print_revision(settings: Settings) -> None:
    revision = migrate.current_revision(settings.database_url)
    click.echo(f"database {_safe_url(settings)} at revision {revision}")


def _safe_url(settings: Settings) -> str:
    return sqlalchemy.engine.make_url(settings.database_url).render_as_string(hide_password=True)


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    _upgrade(settings_or_exit(), revision)


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' empties the schema)."""
    settings = settings_or_exit()
    migrate.downgrade(settings.database_url, revision)
    _print_revision(settings)


@db.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def db_current(as_json: bool) -> None:
    """Show the database's revision and the code's head revision."""
    settings = settings_or_exit()
    try:
        current = migrate.current_revision(settings.database_url)
    except sqlalchemy.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.orig}") from None
    head = migrate.head_revision()
    if as_json:
        click.echo(json.dumps({"database": _safe_url(settings), "current": current, "head": head,
                               "at_head": current == head}))
    else:
        state = "up to date" if current == head else "behind: run `nightshift db upgrade`"
        click.echo(f"{_safe_url(settings)}: {current or 'empty'} (head {head}, {state})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def health(as_json: bool) -> None:
    """Run the database_health job (the hourly schedule's job) now."""
    settings_or_exit()
    outcome = run_job("database_health")
    meta = outcome.step_metadata.get("check_database_op", {})
    report(outcome, as_json, f"database {meta.get('backend')} at revision {meta.get('revision')}, "
                             f"answered in {meta.get('latency_ms')} ms")


def _engine(settings: Settings):
    from nightshift.db.engine import create_engine

    return create_engine(settings.database_url)


def _require_migrated(settings: Settings) -> None:
    try:
        current = migrate.current_revision(settings.database_url)
    except sqlalchemy.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.orig}") from None
    if current != migrate.head_revision():
        raise UsageError(f"the database {_safe_url(settings)} is at revision {current or 'none'}, not "
                         f"{migrate.head_revision()}: run `nightshift db upgrade`")


def _account_id(engine, slug: str | None) -> int | None:
    if slug is None:
        return None
    import sqlalchemy as sa

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


@main.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--profile", type=click.Choice(sorted(PROFILE_NAMES)), help="Default: sub-folder or headers.")
@click.option("--account", help="Slug of the owning account.")
@click.option("--dry-run", is_flag=True, help="Parse, validate and count; write nothing.")
@click.option("--strict", is_flag=True, help="All or nothing: any invalid row and nothing is written.")
@click.option("--create-categories/--no-create-categories", default=None,
              help="Unknown category/sub-category: create it, or reject the row (unknown_category). "
                   "Default: the setting imports.create_categories.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def import_command(path: Path, profile: str | None, account: str | None, dry_run: bool, strict: bool,
                   create_categories: bool | None, as_json: bool) -> None:
    """Import a CSV/Excel file (the same job the upload sensor runs).

    Exit 0 when the import ran (even with invalid rows), 1 when it failed (missing columns, no profile
    matches, too many invalid rows, --strict, an internal error), 2 for bad usage or an unreadable file.
    """
    settings = settings_or_exit()
    if create_categories is None:
        create_categories = settings.imports.create_categories
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    _require_migrated(settings)
    from nightshift.imports.service import start_workers_for

    start_workers_for(path, settings)  # their server loads while this process loads Dagster
    engine = _engine(settings)
    account_id = _account_id(engine, account)
    # On a terminal a progress line replaces Dagster's per-chunk log lines.
    show_progress = sys.stderr.isatty() and not as_json
    with progress_line(show_progress):
        options = {"strict": strict, "create_categories": create_categories}
        summary, exit_code = _run_import_job(settings, engine, path, profile, account, account_id, dry_run, options,
                                             quiet=as_json or show_progress, as_json=as_json)
    engine.dispose()
    _print_import(summary, as_json)
    sys.exit(exit_code)


def _run_import_job(settings: Settings, engine, path: Path, profile: str | None, account: str | None,
                    account_id: int | None, dry_run: bool, options: dict[str, Any], *, quiet: bool,
                    as_json: bool) -> tuple[dict, int]:
    """Run the import (or its dry run); exit code 2 only for an unreadable file, 1 for any other failure.

    options: the run config both jobs share (strict, create_categories).
    """
    from nightshift.imports import intake
    from nightshift.imports import log as import_log
    from nightshift.imports.profiles import PROFILES

    if dry_run:
        config = {"path": str(path.resolve()), "profile": profile, "account_id": account_id, **options}
        outcome = run_job("import_dry_run", run_config={"ops": {"dry_run_import": {"config": config}}},
                          quiet=quiet)
        if not outcome.success:
            report(outcome, as_json, "")
        result = outcome.result.output_for_node("dry_run_import")
        summary = result.as_json()
        exit_code = EXIT_USAGE if result.unreadable else EXIT_FAILED if result.status == "failed" else EXIT_OK
    else:
        upload = intake.Upload(path.resolve(), PROFILES[profile] if profile else None, account)
        registered = intake.register(engine, upload, settings, detect_duplicates=False, account_id=account_id)
        outcome = run_job(
            "import_job", partition_key=registered.partition_key,
            dynamic_partition=("import_files", registered.partition_key),
            run_config={"ops": {"import_batch": {"config": options}}},
            tags={"nightshift/import_id": str(registered.import_id)}, quiet=quiet,
        )
        row = import_log.get(engine, registered.import_id)
        summary = import_log.summary(engine, row)
        if row["status"] in ("received", "running"):
            # The run died before the import recorded its outcome (infrastructure failure).
            report(outcome, as_json, "")
        # The import log does not record whether the file could be read (the service's FileRejected and
        # ImportRejected both end as failure_kind bad_input, stage received); the asset's dg.Failure says so.
        unreadable = outcome.failure_metadata.get("import_batch", {}).get("unreadable") is True
        exit_code = (EXIT_OK if row["status"] in ("succeeded", "partial")
                     else EXIT_USAGE if unreadable
                     else EXIT_FAILED)
    return summary, exit_code


@main.group()
def imports() -> None:
    """The import log."""


@imports.command("failed-partitions")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of one comma-separated line.")
def imports_failed_partitions(as_json: bool) -> None:
    """Partitions whose latest import failed in a run, for `dagster job backfill -j import_job --partitions`."""
    from nightshift.imports import recovery

    engine = _engine(settings_or_exit())
    keys = recovery.failed_partition_keys(engine)
    engine.dispose()
    click.echo(json.dumps(keys) if as_json else ",".join(keys))


@imports.command("list")
@click.option("--status", type=click.Choice(["received", "running", "succeeded", "partial", "failed", "duplicate"]))
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def imports_list(status: str | None, limit: int, as_json: bool) -> None:
    """Recent imports, newest first."""
    from nightshift.imports import log as import_log

    engine = _engine(settings_or_exit())
    rows = import_log.list_imports(engine, status=status, limit=limit)
    engine.dispose()
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
@click.option("--json", "as_json", is_flag=True)
def imports_show(import_id: int, as_json: bool) -> None:
    """One import: status, counts, errors, report path."""
    from nightshift.imports import log as import_log

    engine = _engine(settings_or_exit())
    row = import_log.get(engine, import_id)
    if row is None:
        raise UsageError(f"no import with id {import_id}")
    summary = import_log.summary(engine, row)
    engine.dispose()
    _print_import(summary, as_json)
