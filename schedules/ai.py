"""The nightly AI regeneration of the old system: 02:00 in the settings' time zone, within a token budget."""

import dagster as dg

from nightshift.config import Settings
from pipelines.jobs.ai import ai_regeneration


def ai_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    config = {"stale": True, "token_budget": settings.ai.regeneration_token_budget}
    return [dg.ScheduleDefinition(
        name="ai_regeneration_nightly", job=ai_regeneration, cron_schedule="0 2 * * *",
        execution_timezone=settings.timezone, default_status=dg.DefaultScheduleStatus.RUNNING,
        run_config={"ops": {"generate_ai_content": {"config": config}}},
        description=f"Daily 02:00: contents older than {settings.ai.regenerate_after_days} days or of an older "
                    f"template version, within {settings.ai.regeneration_token_budget:,} tokens.",
    )]
