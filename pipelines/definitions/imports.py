"""The imports domain: uploaded CSV/Excel files into the app database."""

from typing import Any

import dagster as dg

from assets.imports import import_batch, import_job
from nightshift.config import Settings
from pipelines.jobs.imports import OUTCOME_IO_MANAGER, import_dry_run
from sensors.imports import import_failure_sensor, upload_sensor


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    return dg.Definitions(
        assets=[import_batch],
        jobs=[import_job, import_dry_run],
        sensors=[upload_sensor(settings), import_failure_sensor],
        resources={**{key: resources[key] for key in ("database", "settings")}, OUTCOME_IO_MANAGER: dg.mem_io_manager},
    )
