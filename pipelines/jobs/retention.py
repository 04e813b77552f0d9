"""cleanup: the retention policies, one op per policy group, then the Dagster instance's own growth.

Ops run one after the other (rows, import files and logs, instance): one writer at a time on SQLite, and
the partitions of the imports deleted by the second op are retired by the third. Each op retries only
transient database errors. Metadata per policy, stable numeric keys: `<policy>.deleted`,
`<policy>.would_delete`, `<policy>.remaining`, `<policy>.oldest_remaining_age_s`.
"""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from assets.imports import import_files
from nightshift.config import ConfigError, Settings
from nightshift.db.engine import TRANSIENT_DB_ERRORS, read_transaction, utc
from nightshift.db.schema import imports
from nightshift.retention.cleanup import run_policies
from nightshift.retention.policies import IMPORT_FILES_AND_LOGS, OPTIONS, POLICY_NAMES, ROWS, resolve
from nightshift.retention.run import PolicyReport, Progress, Run, utc_now
from resources.database import Database
from resources.families import FAMILIES, FAMILY_TAG, family_tags

PARTITIONS, RUNS = "dagster_partitions", "dagster_runs"
INSTANCE_POLICIES = (PARTITIONS, RUNS)
ALL_POLICIES = (*POLICY_NAMES, *INSTANCE_POLICIES)
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
# Storage deletes are one statement per key or run; progress is logged every so many.
INSTANCE_BATCH = 100


class CleanupConfig(dg.Config):
    """Every op of `cleanup` takes the same config (the CLI's and the schedules' options)."""

    dry_run: bool = False
    only: list[str] = []  # policy names; empty: every enabled policy
    # Ages overriding the settings, named as the old commands' options (days, or hours where it says so).
    processed_messages_days: int | None = None
    completed_requests_days: int | None = None
    abandoned_requests_hours: int | None = None
    attempts_days: int | None = None
    notifications_days: int | None = None
    webhook_events_days: int | None = None
    alerts_days: int | None = None
    imports_days: int | None = None
    files_days: int | None = None
    run_days: int | None = None
    # Each op stops between batches once it has run this long (0: no limit); the next run resumes.
    stop_after_seconds: int = 0


def check_only(only: list[str]) -> None:
    unknown = sorted(set(only) - set(ALL_POLICIES))
    if unknown:
        raise ConfigError(f"--only {unknown[0]}: no such retention policy (known: {', '.join(ALL_POLICIES)})")


def check_families(settings: Settings) -> None:
    unknown = sorted(set(settings.retention.run_families) - set(FAMILIES))
    if unknown:
        raise ConfigError(f"retention.run_families: {unknown[0]!r} is not a job family "
                          f"(known: {', '.join(FAMILIES)})")


def cleanup_run_config(**config: Any) -> dict[str, Any]:
    """The run config of `cleanup` giving every op the same CleanupConfig values."""
    return {"ops": {op: {"config": config} for op in CLEANUP_OPS}}


def _stopper(config: CleanupConfig) -> Callable[[], bool]:
    if not config.stop_after_seconds:
        return lambda: False
    deadline = time.monotonic() + config.stop_after_seconds
    return lambda: time.monotonic() >= deadline


def _metadata(reports: list[PolicyReport]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for report in reports:
        metadata[f"{report.name}.deleted"] = report.deleted
        metadata[f"{report.name}.would_delete"] = report.would_delete
        metadata[f"{report.name}.remaining"] = report.remaining
        metadata[f"{report.name}.oldest_remaining_age_s"] = dg.MetadataValue.float(
            float(report.oldest_remaining_age_s or 0.0))
    return metadata


def _guarded(work: Callable[[], list[PolicyReport]]) -> list[PolicyReport]:
    """Transient database errors go to the op's retry policy; anything else fails the op at once."""
    try:
        return work()
    except TRANSIENT_DB_ERRORS:
        raise
    except ConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except Exception as exc:
        raise dg.Failure(description=f"cleanup failed on an internal error: {type(exc).__name__}: {exc}",
                         allow_retries=False) from exc


def _run_group(context: dg.OpExecutionContext, config: CleanupConfig, database: Database, settings: Settings,
               group: str) -> dg.Output:
    def work() -> list[PolicyReport]:
        check_only(config.only)
        retention = resolve(settings.retention).with_ages({option: getattr(config, option) for option in OPTIONS})
        wanted = [name for name in config.only if name in POLICY_NAMES]
        policies = [] if config.only and not wanted else retention.selected(wanted, group)

        def on_batch(progress: Progress) -> None:
            context.log.info(f"{progress.policy}: batch {progress.batch}, {progress.rows} "
                             f"({progress.total} so far)")

        run = Run(utc_now(), settings.data_dir, config.dry_run, on_batch, _stopper(config))
        return run_policies(database.engine, retention, policies, run)

    reports = _guarded(work)
    for report in reports:
        verb = "would delete" if config.dry_run else "deleted"
        count = report.would_delete if config.dry_run else report.deleted
        context.log.info(f"{report.name}: {verb} {count}, {report.remaining} remaining"
                         + (" (stopped: the next run resumes)" if report.stopped else ""))
    return dg.Output([r.as_dict() for r in reports], metadata=_metadata(reports))


RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.op(retry_policy=RETRY, out=dg.Out(list), description="Retention of the app tables (rows).")
def cleanup_rows(context: dg.OpExecutionContext, config: CleanupConfig, database: Database,
                 settings: dg.ResourceParam[Settings]) -> dg.Output:
    return _run_group(context, config, database, settings, ROWS)


@dg.op(retry_policy=RETRY, ins={"after": dg.In(dg.Nothing)}, out=dg.Out(list),
       description="Retention of the import files (data/processed, failed, reports) and the import log.")
def cleanup_imports(context: dg.OpExecutionContext, config: CleanupConfig, database: Database,
                    settings: dg.ResourceParam[Settings]) -> dg.Output:
    return _run_group(context, config, database, settings, IMPORT_FILES_AND_LOGS)


def _retire_partitions(context: dg.OpExecutionContext, database: Database, limit: int, run: Run) -> PolicyReport:
    """Partitions of import_files whose import is no longer in the import log (the imports policy deleted
    it), at most `limit` per run: the storage deletes one key per statement."""
    instance, report = context.instance, PolicyReport(PARTITIONS)
    keys = instance.get_dynamic_partitions(import_files.name)
    with read_transaction(database.engine) as conn:
        registered = set(conn.execute(sa.select(imports.c.partition_key)
                                      .where(imports.c.partition_key.is_not(None))).scalars())
    retired = [key for key in keys if key not in registered]
    if not run.dry_run:
        for key in retired[:limit]:
            if run.should_stop():
                report.stopped = True
                break
            instance.delete_dynamic_partition(import_files.name, key)
            report.deleted += 1
            if report.deleted % INSTANCE_BATCH == 0:
                report.batches += 1
                run.progress(PARTITIONS, report.batches, INSTANCE_BATCH, report.deleted)
    report.would_delete = len(retired) - report.deleted
    report.remaining = len(keys) - report.deleted
    return report


def _delete_runs(context: dg.OpExecutionContext, families: list[str], age: timedelta, limit: int,
                 run: Run) -> PolicyReport:
    """Finished runs of the high-frequency job families older than `age`, oldest first, at most `limit`."""
    instance, report = context.instance, PolicyReport(RUNS)
    cutoff = run.now - age
    old = dg.RunsFilter(tags={FAMILY_TAG: families}, statuses=FINISHED, created_before=cutoff)
    expired = instance.get_run_records(filters=old, limit=limit, order_by="create_timestamp", ascending=True)
    if not run.dry_run:
        for record in expired:
            if run.should_stop():
                report.stopped = True
                break
            instance.delete_run(record.dagster_run.run_id)
            report.deleted += 1
            if report.deleted % INSTANCE_BATCH == 0:
                report.batches += 1
                run.progress(RUNS, report.batches, INSTANCE_BATCH, report.deleted)
    report.would_delete = instance.get_runs_count(old)
    family_runs = dg.RunsFilter(tags={FAMILY_TAG: families})
    report.remaining = instance.get_runs_count(family_runs)
    [oldest] = instance.get_run_records(filters=family_runs, limit=1, order_by="create_timestamp",
                                        ascending=True) or [None]
    if oldest is not None:
        report.oldest_remaining_age_s = round((run.now - utc(oldest.create_timestamp)).total_seconds(), 3)
    return report


@dg.op(retry_policy=RETRY, ins={"after": dg.In(dg.Nothing)}, out=dg.Out(list),
       description="The Dagster instance: retire import_files partitions of deleted imports, delete old runs "
                   "of the high-frequency job families.")
def cleanup_instance(context: dg.OpExecutionContext, config: CleanupConfig, database: Database,
                     settings: dg.ResourceParam[Settings]) -> dg.Output:
    def work() -> list[PolicyReport]:
        check_only(config.only)
        check_families(settings)
        wanted = [name for name in INSTANCE_POLICIES if not config.only or name in config.only]
        retention = settings.retention
        if config.run_days is not None and config.run_days <= 0:
            raise ConfigError(f"--run-days: expected a positive whole number of days, got {config.run_days}")
        age = timedelta(days=config.run_days or retention.run_days)
        run = Run(utc_now(), settings.data_dir, config.dry_run,
                  lambda p: context.log.info(f"{p.policy}: {p.total} so far"), _stopper(config))
        reports = []
        if PARTITIONS in wanted:
            reports.append(_retire_partitions(context, database, retention.instance_items_per_run, run))
        if RUNS in wanted and not (reports and reports[-1].stopped):
            reports.append(_delete_runs(context, list(retention.run_families), age,
                                        retention.instance_items_per_run, run))
        return reports

    reports = _guarded(work)
    for report in reports:
        context.log.info(f"{report.name}: deleted {report.deleted}, {report.would_delete} more past retention, "
                         f"{report.remaining} remaining")
    return dg.Output([r.as_dict() for r in reports], metadata=_metadata(reports))


CLEANUP_OPS = ("cleanup_rows", "cleanup_imports", "cleanup_instance")


@dg.job(tags=family_tags("maintenance"),
        description="Retention: app tables, import files and logs, the Dagster instance (batched; dry run).")
def cleanup() -> None:
    cleanup_instance(after=cleanup_imports(after=cleanup_rows()))

