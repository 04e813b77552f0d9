"""The hourly database health check. Every schedule names its execution time zone (a setting)."""

import dagster as dg

from nightshift.config import Settings
from pipelines.jobs.health import database_health


def health_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name="database_health_hourly",
            job=database_health,
            cron_schedule="7 * * * *",
            execution_timezone=settings.timezone,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Hourly: the app database answers and is migrated to head.",
        )
    ]
