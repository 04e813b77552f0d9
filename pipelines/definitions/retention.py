"""The retention domain: the cleanup job and its schedules.

The retention settings are checked when the code location loads (an unknown policy, a policy over the
token ledger or an unknown job family fails the load, naming the key)."""

from typing import Any

import dagster as dg

from nightshift.config import Settings
from nightshift.retention.policies import resolve
from pipelines.jobs.retention import check_families, cleanup
from schedules.retention import retention_schedules


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    resolve(settings.retention)
    check_families(settings)
    return dg.Definitions(
        jobs=[cleanup],
        schedules=retention_schedules(settings),
        resources={key: resources[key] for key in ("database", "settings")},
    )
