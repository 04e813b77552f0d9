"""The one Definitions object the workspace loads (code location `nightshift`)."""


import dagster as dg

from assets.imports import import_batch, import_job
from pipelines.health import database_health
from pipelines.imports import import_dry_run
from resources.database import Database
from schedules.maintenance import maintenance_schedules
from sensors.import_failures import import_failure_sensor
from sensors.run_failures import run_failure_alerts
from sensors.uploads import upload_sensor

defs = dg.Definitions(
    assets=[import_batch],
    jobs=[database_health, import_job, import_dry_run],
    schedules=maintenance_schedules(),
    sensors=[run_failure_alerts, upload_sensor, import_failure_sensor],
    resources={"database": Database()},
)
