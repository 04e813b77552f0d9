"""The 5-minute backstop sweep (the old systems swept every 5 or 30 minutes); the outbox sensor is the
fast path."""

import dagster as dg

from nightshift.config import Settings
from pipelines.jobs.notifications import notification_sweep


def notification_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name="notification_sweep_every_5_min",
            job=notification_sweep,
            cron_schedule="*/5 * * * *",
            execution_timezone=settings.timezone,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every 5 minutes: a notification sweep, in case the outbox sensor missed something.",
        )
    ]
