"""Every failed run of this code location becomes an alert (one per job per cooldown)."""

import dagster as dg

from nightshift.alerts import raise_alert
from resources.database import Database


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Records an alert for each failed run (cooldown per job).",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, database: Database) -> None:
    run = context.dagster_run
    failure = context.failure_event.message or "run failed"
    recorded = raise_alert(
        database.engine,
        alert_key=f"run_failure:{run.job_name}",
        severity="warning",
        message=f"Run {run.run_id[:8]} of {run.job_name} failed: {failure}",
        details={"run_id": run.run_id, "job_name": run.job_name, "tags": dict(run.tags)},
    )
    outcome = "recorded" if recorded else "suppressed (cooldown)"
    context.log.info(f"alert {outcome} for failed run {run.run_id} of {run.job_name}")
