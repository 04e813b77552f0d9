"""The 5-minute backstop sweep (the old systems swept every 5 or 30 minutes); the outbox sensor is the
fast path. The hourly notification health check."""

import dagster as dg

from assets.notifications import notification_health_job
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
        ),
        dg.ScheduleDefinition(
            name="notification_health_hourly",
            job=notification_health_job,
            cron_schedule="0 * * * *",
            execution_timezone=settings.timezone,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every hour (as the old health check): notification_health and its checks.",
        ),
    ]
