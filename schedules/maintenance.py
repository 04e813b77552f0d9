"""Schedules of the maintenance family. Every schedule names its execution time zone."""


import dagster as dg

from nightshift.config import load_settings
from pipelines.health import database_health


def maintenance_schedules() -> list[dg.ScheduleDefinition]:
    timezone = load_settings().timezone
    return [
        dg.ScheduleDefinition(
            name="database_health_hourly",
            job=database_health,
            cron_schedule="7 * * * *",
            execution_timezone=timezone,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Hourly: the app database answers and is migrated to head.",
        )
    ]
