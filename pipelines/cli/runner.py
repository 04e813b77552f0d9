"""The convention every `nightshift` command follows, in one place.

A command that does work runs the same Dagster job the schedules and sensors run, in this process, on
the instance in DAGSTER_HOME (so the run shows in the UI), then prints a human summary or, with --json,
one JSON object. Exit codes: 0 success, 1 the job failed (or the database cannot be reached), 2 bad
usage, bad configuration or bad input. User errors print one line, never a traceback.

In-process runs bypass the run queue: its limits and pools hold only for runs the daemon launches, so
every exclusion that protects data lives in the database.
"""

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.config import ConfigError, Settings, load_settings
from nightshift.db import migrate
from nightshift.db.engine import create_engine
from nightshift.db.schema import accounts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(click.ClickException):
    exit_code = EXIT_USAGE


class CommandGroup(click.Group):
    """The root command group: a configuration error or an unreachable database is one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise UsageError(f"configuration error: {exc}") from None
        except sa.exc.OperationalError as exc:
            raise click.ClickException(
                f"cannot reach the database {safe_url(current_settings())}: {exc.orig}"
            ) from None


def current_settings() -> Settings:
    """The settings, loaded once per command (a ConfigError names the key)."""
    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = load_settings()
    return root.obj


def safe_url(settings: Settings) -> str:
    return sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)


@contextmanager
def app_engine() -> Iterator[Engine]:
    engine = create_engine(current_settings().database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def account_id_of(engine: Engine, slug: str | None) -> int | None:
    """The id of the account `--account` names (None when not given); bad usage when there is none."""
    if slug is None:
        return None
    with engine.connect() as conn:
        found = conn.execute(sa.select(accounts.c.id).where(accounts.c.slug == slug)).scalar()
    if found is None:
        raise UsageError(f"--account: no account with slug {slug!r}")
    return found


def require_migrated() -> None:
    settings = current_settings()
    current = migrate.current_revision(settings.database_url)
    if current != migrate.head_revision():
        raise UsageError(f"the database {safe_url(settings)} is at revision {current or 'none'}, not "
                         f"{migrate.head_revision()}: run `nightshift db upgrade`")


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


class WithoutEvents(logging.Filter):
    """Console records of CLI runs without --verbose: the job's own log lines, none of Dagster's events (a
    step or run failure and its stack trace), since the command prints the failure itself, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (getattr(record, "dagster_meta", None) or {}).get("dagster_event") is None


def explained_failure(error: Any) -> bool:
    """A SerializableErrorInfo of a dg.Failure raised on purpose, not from (or while handling) an exception."""
    return error.cls_name == "Failure" and error.cause is None and error.context is None


def cli_console_logger(events: bool):
    """Dagster's colored console logger with the ExplainedFailures filter, and without Dagster's events
    unless `events`: the console logger of CLI runs."""
    import dagster as dg

    @dg.logger(dg.colored_console_logger.config_schema,
               description="The colored console logger; a deliberate dg.Failure shows its message, no stack trace.")
    def cli_console(init_context: dg.InitLoggerContext) -> logging.Logger:
        console = dg.colored_console_logger.logger_fn(init_context)
        console.addFilter(ExplainedFailures())
        if not events:
            console.addFilter(WithoutEvents())
        return console

    return cli_console


def verbose_option(function):
    return click.option("--verbose", is_flag=True,
                        help="Show the run's log: its progress, Dagster's events, stack traces.")(function)


def run_job(job_name: str, *, run_config: dict | None = None, tags: dict[str, str] | None = None,
            partition_key: str | None = None, dynamic_partition: tuple[str, str] | None = None,
            quiet: bool = False, verbose: bool | None = None) -> JobOutcome:
    """Run a job of the code location in this process, recorded on the DAGSTER_HOME instance.

    The console shows the run's log. A command with --verbose (verbose_option) passes its value: with it, the
    whole log (INFO and Dagster's events); without it, only the warnings of the job's own code, the command
    printing the outcome itself. A command without it (None) shows INFO, or warnings with `quiet`, and the
    events."""
    dagster_home()
    import dagster as dg  # deferred: `nightshift db ...` must not pay for loading Dagster

    from pipelines.definitions import build_definitions

    job = build_definitions(current_settings()).resolve_job_def(job_name)
    job = job.with_logger_defs({**job.loggers, "console": cli_console_logger(events=verbose is not False)})
    run_config = dict(run_config or {})
    if verbose is not None:
        quiet = not verbose
    # Dagster's console log is the progress display; --json keeps the terminal to warnings.
    run_config["loggers"] = {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}
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


def materialized(outcome: JobOutcome, asset: str) -> dict[str, Any]:
    """The metadata of the last materialisation of `asset` in the run, as plain values."""
    events = outcome.result.asset_materializations_for_node(asset)
    return {key: _plain(value) for key, value in events[-1].metadata.items()} if events else {}


def _plain(metadata_value: Any) -> Any:
    value = getattr(metadata_value, "value", metadata_value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def echo_json(payload: Any) -> None:
    """One JSON object on stdout: what every `--json` prints."""
    click.echo(json.dumps(payload, ensure_ascii=False, default=str))


def report(outcome: JobOutcome, as_json: bool, human: str) -> None:
    """Print the outcome of a job run and exit with its code."""
    if as_json:
        echo_json(outcome.as_dict())
    elif outcome.success:
        click.echo(human)
        click.echo(f"run {outcome.run_id} ({outcome.duration_s:.1f} s) — open it in the Dagster UI")
    else:
        click.echo(f"{outcome.job} FAILED: {outcome.error}", err=True)
        click.echo(f"run {outcome.run_id} — see its logs in the Dagster UI", err=True)
    sys.exit(EXIT_OK if outcome.success else EXIT_FAILED)


def json_option(function):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(function)
