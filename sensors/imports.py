"""Sensors of the imports domain.

upload_sensor: files dropped in data/uploads/ become import_batch partitions and runs.
import_failure_sensor: an import that failed for a transient reason, or that stalled, is re-requested
once. Transient: the database was unavailable, or the run died while the import was in progress
(`interrupted`: its run failed or was canceled, or its process no longer holds the import's lease).
Stalled: registered by the upload sensor (`received`) longer than imports.stalled_after_seconds ago with
no queued or running run for its partition (the run was never launched, or ended before the import began).
Bad files are never re-requested: they wait for a fixed upload or a manual re-execution.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.imports import STATUS_TAG, import_files, import_job
from nightshift.config import Settings
from nightshift.imports import intake, recovery
from resources.database import Database
from sensors.in_flight import IN_FLIGHT

# Sensor ticks time out at 60 s: leave room for Dagster's own work after the scan.
TICK_BUDGET_S = 40.0
FINISHED_BADLY = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# How far back an interrupted import's run is looked at to report it failed (the sensor ticks every few seconds).
INTERRUPTED_LOOKBACK = timedelta(days=1)


def scan_uploads(context: dg.SensorEvaluationContext, database: Database,
                 settings: dg.ResourceParam[Settings]) -> dg.SensorResult:
    settings.ensure_data_dirs()
    previous = json.loads(context.cursor) if context.cursor else {}
    result = intake.scan(database.engine, settings, previous, time_budget_s=TICK_BUDGET_S)
    if result.registered or result.duplicates or result.rejected:
        context.log.info(
            f"{len(result.registered)} new upload(s), {len(result.duplicates)} duplicate(s), "
            f"{len(result.rejected)} rejected, {len(result.waiting)} still being written or deferred"
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key,
                          tags={"nightshift/import_id": str(r.import_id)})
            for r in result.registered
        ],
        dynamic_partitions_requests=[
            import_files.build_add_request(sorted({r.partition_key for r in result.registered}))
        ] if result.registered else [],
        cursor=json.dumps(result.waiting, sort_keys=True),
    )


def upload_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor's interval is a setting (imports.sensor_interval_seconds), so it is built from them."""
    return dg.sensor(
        name="upload_sensor",
        job=import_job,
        minimum_interval_seconds=settings.imports.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches data/uploads/ (uploads/<profile>/, uploads/<account>/<profile>/) and imports each "
                    "new file once it stopped growing; the same bytes twice are recorded as a duplicate.",
    )(scan_uploads)


def _has_run_in_flight(instance: dg.DagsterInstance, partition_key: str) -> bool:
    # Any job: the UI's "Materialize" and asset backfills run the partition as `__ASSET_JOB`, not import_job.
    runs = instance.get_run_records(
        filters=dg.RunsFilter(tags={"dagster/partition": partition_key}, statuses=IN_FLIGHT), limit=1,
    )
    return bool(runs)


@dg.sensor(
    name="import_failure_sensor",
    job=import_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-requests, once, each import that failed for a transient reason or stalled before starting.",
)
def import_failure_sensor(context: dg.SensorEvaluationContext, database: Database,
                          settings: dg.ResourceParam[Settings]) -> dg.SensorResult:
    _interrupt_dead_imports(context, database, settings)
    requests = []
    for failed in recovery.claim_transient_failures(database.engine):
        requests.append(_retry(failed, "import-retry", "failed for a transient reason"))
        context.log.info(f"import {failed['id']} failed for a transient reason: re-requested once")

    stalled_after = timedelta(seconds=settings.imports.stalled_after_seconds)
    candidates = recovery.stalled_candidates(database.engine, datetime.now(UTC) - stalled_after)
    stalled = [c["id"] for c in candidates if not _has_run_in_flight(context.instance, c["partition_key"])]
    stalled_keys = []
    for row in recovery.claim_stalled(database.engine, stalled):
        requests.append(_retry(row, "import-stalled", "stalled"))
        stalled_keys.append(row["partition_key"])
        context.log.info(f"import {row['id']} was registered over {stalled_after} ago and never started: "
                         "re-requested once")
    # A registration whose upload_sensor tick never reached Dagster has no partition yet: without this the
    # request fails the whole tick (unknown partition) after the claim, and the import never runs.
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[import_files.build_add_request(sorted(set(stalled_keys)))] if stalled_keys else [],
    )


def _interrupt_dead_imports(context: dg.SensorEvaluationContext, database: Database, settings: Settings) -> None:
    """Imports in progress whose run ended badly, or whose process no longer holds their lease, turned
    `interrupted` (then claimed below like a transient failure). A run whose process died stays STARTED for
    Dagster when nothing watched that process (a CLI run): once its import is `interrupted`, it is reported
    failed."""
    engine, instance = database.engine, context.instance
    in_progress = recovery.in_progress_imports(engine)
    runs = _runs(instance, [row["dagster_run_id"] for row in in_progress])
    for row in in_progress:
        run = runs.get(row["dagster_run_id"])
        ended_badly = run is not None and run.status in FINISHED_BADLY
        if not ended_badly and recovery.lease_is_held(engine, row["id"]):
            continue
        if recovery.mark_interrupted(engine, row["id"], row["dagster_run_id"], settings.lang):
            reason = f"its run ended {run.status.value}" if ended_badly else "the process of its run died"
            context.log.info(f"import {row['id']}: {reason} ({row['dagster_run_id']})")
            if ended_badly:
                instance.add_run_tags(run.run_id, {STATUS_TAG: "interrupted"})
    interrupted = recovery.interrupted_runs(engine, datetime.now(UTC) - INTERRUPTED_LOOKBACK)
    for run in _runs(instance, list(interrupted), statuses=[dg.DagsterRunStatus.STARTED]).values():
        instance.report_run_failed(run, f"the process of the run died while import {interrupted[run.run_id]} ran")
        instance.add_run_tags(run.run_id, {STATUS_TAG: "interrupted"})


def _runs(instance: dg.DagsterInstance, run_ids: list[str],
          statuses: list[dg.DagsterRunStatus] | None = None) -> dict[str, dg.DagsterRun]:
    """The runs of these ids (of any job: an import_job run, or a UI materialization), in one query."""
    if not run_ids:
        return {}
    return {run.run_id: run for run in instance.get_runs(filters=dg.RunsFilter(run_ids=run_ids,
                                                                               statuses=statuses or []))}


def _retry(row: dict, kind: str, reason: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{kind}:{row['id']}:{row['auto_retries']}",
        partition_key=row["partition_key"],
        tags={"nightshift/import_id": str(row["id"]), "nightshift/auto_retry": reason},
    )
