"""alerts_sensor: every minute, alerts from the tables and the run storage, then every unsent alert sent.

Run-status sensors handle a few runs per tick and fall behind under many failures; this one reads
what changed since its cursor: failed runs of any job, breakers that opened or closed, imports that
failed. It runs the notification health checks against the configured thresholds (`notifications.health:`)
so an outage alerts within a minute, not at the next hourly notification_health. It also sends the alerts
others recorded (quotas, orphaned receipts)."""

import json
from datetime import UTC, datetime

import dagster as dg

from assets.notifications import check_health
from nightshift import monitoring
from nightshift.alerts import raise_alert
from nightshift.config import Settings
from resources.alerting import Alerting
from resources.database import Database

RUNS_PER_TICK = 500


def _cursor(raw: str | None, database: Database) -> tuple[monitoring.Cursor, float]:
    if not raw:
        return monitoring.latest(database.engine), datetime.now(UTC).timestamp()
    stored = json.loads(raw)
    return monitoring.Cursor(stored["breaker_change_id"], stored["import_id"]), stored["runs_after"]


@dg.sensor(
    name="alerts_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Raises alerts from failed runs, breaker changes, failed imports and the notification health "
                "checks; sends unsent alerts (email, admin WhatsApp) once per key per cooldown, and recoveries.",
)
def alerts_sensor(context: dg.SensorEvaluationContext, database: Database, alerting: Alerting,
                  settings: dg.ResourceParam[Settings]):
    engine, cooldown = database.engine, alerting.cooldown
    cursor, runs_after = _cursor(context.cursor, database)
    records = context.instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=datetime.fromtimestamp(runs_after, UTC)),
        limit=RUNS_PER_TICK)
    failed_jobs = sorted({record.dagster_run.job_name for record in records})
    for record in records:
        run = record.dagster_run
        raise_alert(engine, f"run_failure:{run.job_name}", "warning", f"Run {run.run_id[:8]} of {run.job_name} failed",
                    {"run_id": run.run_id, "job_name": run.job_name}, cooldown=cooldown)
    newest = max([runs_after, *(record.update_timestamp.timestamp() for record in records)])
    cursor, changed = monitoring.evaluate(engine, cursor, cooldown=cooldown)
    _, _, checked = check_health(engine, context.instance, settings.notifications.health, cooldown)
    changed = {outcome: changed[outcome] + [f"notification_health:{check}" for check in checked[outcome]]
               for outcome in ("raised", "recovered")}
    sent = alerting.dispatch(engine)
    context.update_cursor(json.dumps({"breaker_change_id": cursor.breaker_change_id, "import_id": cursor.import_id,
                                      "runs_after": newest}))
    return dg.SkipReason(f"failed jobs: {', '.join(failed_jobs) or 'none'}; raised {changed['raised'] or 'none'}, "
                         f"recovered {changed['recovered'] or 'none'}; sent {len(sent)} alert(s)")
