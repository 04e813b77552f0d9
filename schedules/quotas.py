"""Token quota schedules, all in NIGHTSHIFT_TIMEZONE: a month opens at 00:00 on the 1st, expired holds
end every 5 minutes, the ledger is reconciled nightly."""

import dagster as dg

from nightshift.config import Settings
from pipelines.jobs.quotas import release_expired_reservations


def quota_schedules(settings: Settings, month_opening, reconcile) -> list:
    """`month_opening` and `reconcile`: the asset jobs of token_periods and token_balances."""
    return [
        # The partitions' time zone is the schedule's; a tick missed while the daemon was down is caught up.
        dg.build_schedule_from_partitioned_job(
            month_opening, name="token_month_opening_monthly", minute_of_hour=0, hour_of_day=0, day_of_month=1,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="00:00 on the 1st: open the new month for every active account."),
        dg.ScheduleDefinition(
            name="release_expired_reservations_every_5_min", job=release_expired_reservations,
            cron_schedule="*/5 * * * *", execution_timezone=settings.timezone,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every 5 minutes: end the token holds past their expiry."),
        dg.ScheduleDefinition(
            name="token_reconcile_nightly", job=reconcile, cron_schedule="30 3 * * *",
            execution_timezone=settings.timezone, default_status=dg.DefaultScheduleStatus.RUNNING,
            description="03:30: check every period's cache against the token ledger."),
    ]
