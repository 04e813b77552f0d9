"""The notifications domain: the WhatsApp outbox's sweep job, its sensor and backstop schedule; the
welcome message wired into the imports' new-client hook when an account opted in."""

import os
from typing import Any

import dagster as dg

from assets.notifications import notification_health, notification_health_job
from nightshift.config import Settings
from nightshift.imports import hooks
from nightshift.notifications.welcome import welcome_hook
from pipelines.jobs.alerts import alert_test
from pipelines.jobs.notifications import apply_webhook_events, notification_sweep
from resources.alerting import alerting_resource
from resources.whatsapp import whatsapp_provider
from schedules.notifications import notification_schedules
from sensors.alerts import alerts_sensor
from sensors.notifications import outbox_sensor, webhook_events_sensor


def register_welcome(settings: Settings) -> None:
    """Our hook replaces the one an earlier build registered; none when no account opted in (the
    import then does not even look its new clients up)."""
    kept = [hook for hook in hooks.NEW_CLIENT_HOOKS if hook.__name__ != "welcome_new_clients"]
    if settings.notifications.welcome:
        kept.append(welcome_hook(settings.notifications))
    hooks.NEW_CLIENT_HOOKS[:] = kept


def definitions(settings: Settings, resources: dict[str, Any]) -> dg.Definitions:
    register_welcome(settings)
    whatsapp = whatsapp_provider(resources["settings"], os.environ)
    return dg.Definitions(
        assets=[notification_health],
        jobs=[notification_sweep, apply_webhook_events, notification_health_job, alert_test],
        # alerts_sensor watches every domain's tables; it lives here with the alert channels it sends through.
        sensors=[outbox_sensor, webhook_events_sensor, alerts_sensor],
        schedules=notification_schedules(settings),
        resources={"database": resources["database"], "settings": resources["settings"], "whatsapp": whatsapp,
                   "alerting": alerting_resource(resources["settings"], whatsapp, os.environ)},
    )
