"""outbox_sensor: a sweep as soon as notifications are due and no sweep is queued or running;
webhook_events_sensor: the receipts applied as soon as webhook events wait."""

import dagster as dg

from nightshift.notifications.receipts import pending_count
from nightshift.notifications.sweep import sweep_wanted
from pipelines.jobs.notifications import apply_webhook_events, notification_sweep
from resources.database import Database
from resources.families import family_tags
from resources.whatsapp import WhatsAppProvider
from sensors.in_flight import job_in_flight


def _age(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


@dg.sensor(
    name="outbox_sensor",
    # By name: given the job object, resolving the code location rebuilds the sensor around the job with
    # its resources and Dagster warns on stderr of every CLI command (a beta parameter, owners).
    job_name=notification_sweep.name,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests a notification sweep when due notifications wait and no sweep is queued or running.",
)
def outbox_sensor(context: dg.SensorEvaluationContext, database: Database, whatsapp: WhatsAppProvider):
    due, oldest, blocked, probe_due = sweep_wanted(database.engine, whatsapp.provider.strip().lower())
    held = f"; {blocked} held by an open breaker" if blocked else ""
    if not due and not probe_due:
        return dg.SkipReason(f"no due notifications{held}")
    backlog = f"{due} due notification(s), the oldest due for {_age(oldest)}{held}"
    if job_in_flight(context.instance, notification_sweep.name):
        return dg.SkipReason(f"{backlog}: a sweep is already queued or running")
    context.log.info(f"requesting a sweep: {backlog}")
    return dg.RunRequest(tags={**family_tags("sweeps"), "nightshift/launched_by": "outbox_sensor"})


@dg.sensor(
    name="webhook_events_sensor",
    job_name=apply_webhook_events.name,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests apply_webhook_events when delivery receipts wait (new ones, or orphans due another try).",
)
def webhook_events_sensor(context: dg.SensorEvaluationContext, database: Database):
    waiting = pending_count(database.engine)
    if not waiting:
        return dg.SkipReason("no webhook events to apply")
    if job_in_flight(context.instance, apply_webhook_events.name):
        return dg.SkipReason(f"{waiting} webhook event(s) wait: a run is already queued or running")
    return dg.RunRequest(tags={**family_tags("maintenance"), "nightshift/launched_by": "webhook_events_sensor"})
