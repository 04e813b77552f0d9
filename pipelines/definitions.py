"""The one Definitions object the workspace loads (code location `nightshift`)."""


import dagster as dg

from pipelines.health import database_health
from resources.database import Database
from schedules.maintenance import maintenance_schedules
from sensors.run_failures import run_failure_alerts

defs = dg.Definitions(
    jobs=[database_health],
    schedules=maintenance_schedules(),
    sensors=[run_failure_alerts],
    resources={"database": Database()},
)
