"""Dagster resources wrapping the core, and what every domain's Dagster objects share (run families)."""

from typing import Any

from nightshift.config import Settings
from resources.database import Database


def shared_resources(settings: Settings) -> dict[str, Any]:
    """The resources every domain uses: `settings` (the process's settings, for `dg.ResourceParam[Settings]`
    parameters) and `database`. pipelines.definitions builds them once and hands the same objects to each
    domain: Definitions.merge accepts a resource key twice only for the same object."""
    return {"settings": settings, "database": Database(settings=settings)}
