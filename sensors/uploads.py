"""upload_sensor: files dropped in data/uploads/ become import_batch partitions and runs."""

import json

import dagster as dg

from assets.imports import import_files, import_job
from nightshift.config import load_settings
from nightshift.imports import intake
from resources.database import Database

# Sensor ticks time out at 60 s: leave room for Dagster's own work after the scan.
TICK_BUDGET_S = 40.0


@dg.sensor(
    name="upload_sensor",
    job=import_job,
    minimum_interval_seconds=load_settings().imports.sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches data/uploads/ (uploads/<profile>/, uploads/<account>/<profile>/) and imports each "
                "new file once it stopped growing; the same bytes twice are recorded as a duplicate.",
)
def upload_sensor(context: dg.SensorEvaluationContext, database: Database) -> dg.SensorResult:
    settings = load_settings()
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
