"""The notifications domain: the WhatsApp outbox's sweep job, its sensor and backstop schedule."""

import os
from typing import Any

import dagster as dg

from nightshift.config import Settings
from pipelines.jobs.notifications import notification_sweep
from resources.whatsapp import whatsapp_provider
from schedules.notifications import notification_schedules
from sensors.notifications import outbox_sensor


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    return dg.Definitions(
        jobs=[notification_sweep],
        sensors=[outbox_sensor],
        schedules=notification_schedules(settings),
        resources={"database": resources["database"], "settings": resources["settings"],
                   "whatsapp": whatsapp_provider(resources["settings"], os.environ)},
    )
