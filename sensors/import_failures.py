"""import_failure_sensor: an import that failed for a transient reason is re-requested once.

Transient: the database was unavailable, or the run died (interrupted, crashed) while the import was
running. Bad files are never re-requested: they wait for a fixed upload or a manual re-execution.
"""

import dagster as dg

from assets.imports import import_job
from nightshift.imports import recovery
from resources.database import Database

FINISHED_BADLY = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dg.sensor(
    name="import_failure_sensor",
    job=import_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-requests, once, each import that failed for a transient reason.",
)
def import_failure_sensor(context: dg.SensorEvaluationContext, database: Database) -> dg.SensorResult:
    for running in recovery.running_imports(database.engine):
        run = context.instance.get_run_by_id(running["dagster_run_id"]) if running["dagster_run_id"] else None
        if run is not None and run.status in FINISHED_BADLY:
            recovery.mark_interrupted(database.engine, running["id"], run.run_id)
            context.log.info(f"import {running['id']}: its run {run.run_id} ended {run.status.value}")
    requests = []
    for failed in recovery.claim_transient_failures(database.engine):
        requests.append(dg.RunRequest(
            run_key=f"import-retry:{failed['id']}:{failed['auto_retries']}",
            partition_key=failed["partition_key"],
            tags={"nightshift/import_id": str(failed["id"]), "nightshift/auto_retry": "1"},
        ))
        context.log.info(f"import {failed['id']} failed for a transient reason: re-requested once")
    return dg.SensorResult(run_requests=requests)
