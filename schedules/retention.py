"""The cleanup schedules of the old systems, in the settings' time zone: rows and the Dagster instance
daily at 02:00, import files and logs on Sundays at 03:00."""

import dagster as dg

from nightshift.config import Settings
from nightshift.retention.policies import IMPORT_FILES_AND_LOGS, POLICIES, ROWS
from pipelines.jobs.retention import INSTANCE_POLICIES, cleanup, cleanup_run_config

DAILY_POLICIES = [*(p.name for p in POLICIES if p.group == ROWS), *INSTANCE_POLICIES]
WEEKLY_POLICIES = [p.name for p in POLICIES if p.group == IMPORT_FILES_AND_LOGS]


def retention_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name="cleanup_daily", job=cleanup, cron_schedule="0 2 * * *", execution_timezone=settings.timezone,
            run_config=cleanup_run_config(only=DAILY_POLICIES), default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Daily 02:00: retention of the app tables and of the Dagster instance.",
        ),
        dg.ScheduleDefinition(
            name="cleanup_weekly", job=cleanup, cron_schedule="0 3 * * 0", execution_timezone=settings.timezone,
            run_config=cleanup_run_config(only=WEEKLY_POLICIES), default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Sundays 03:00: import files (processed, failed, reports) and the import log.",
        ),
    ]
