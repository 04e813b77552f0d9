"""What every domain relies on: the database health check and alerts on failed runs."""

from typing import Any

import dagster as dg

from nightshift.config import Settings
from pipelines.jobs.health import database_health
from schedules.health import health_schedules
from sensors.run_failures import run_failure_alerts


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    return dg.Definitions(
        jobs=[database_health],
        schedules=health_schedules(settings),
        sensors=[run_failure_alerts],
        resources={"database": resources["database"]},
    )
