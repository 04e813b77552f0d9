"""The ai domain: ai_content per import (started by ai_import_sensor), retries and quota waits
(ai_requests_sensor → ai_retry), the nightly regeneration, and the AIProvider resource."""

import os
from typing import Any

import dagster as dg

from assets.ai import RUN_TAGS, ai_content
from nightshift.config import Settings
from pipelines.jobs.ai import ai_regeneration, ai_retry
from resources.ai import ai_provider
from schedules.ai import ai_schedules
from sensors.ai import ai_import_sensor, ai_requests_sensor


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    content_job = dg.define_asset_job("ai_content_job", selection=[ai_content], tags=RUN_TAGS,
                                      description="AI texts of one import's new or changed businesses.")
    return dg.Definitions(
        assets=[ai_content],
        jobs=[content_job, ai_regeneration, ai_retry],
        sensors=[ai_import_sensor(content_job, settings), ai_requests_sensor(settings)],
        schedules=ai_schedules(settings),
        resources={"database": resources["database"], "settings": resources["settings"],
                   "ai": ai_provider(resources["settings"], os.environ)},
    )
