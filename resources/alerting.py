"""The alerting resource: where alerts go (SMTP email, the admin's WhatsApp) and their cooldown.

Every variable is read through dg.EnvVar, so the SMTP password never lands in run config or the UI.
Without NIGHTSHIFT_SMTP_HOST there is no email channel, without NIGHTSHIFT_ALERT_PHONE no WhatsApp one:
alerts are still recorded (nightshift alerts list) and sent once a channel is configured.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from nightshift.alerts import Channel, EmailChannel, dispatch
from nightshift.config import Settings
from nightshift.notifications.admin_alerts import WhatsAppAlertChannel
from nightshift.phones import to_e164
from resources.whatsapp import WhatsAppProvider

ENV_FIELDS = {
    "smtp_host": "NIGHTSHIFT_SMTP_HOST",
    "smtp_port": "NIGHTSHIFT_SMTP_PORT",
    "smtp_user": "NIGHTSHIFT_SMTP_USER",
    "smtp_password": "NIGHTSHIFT_SMTP_PASSWORD",
    "smtp_from": "NIGHTSHIFT_SMTP_FROM",
    "smtp_to": "NIGHTSHIFT_SMTP_TO",
    "smtp_starttls": "NIGHTSHIFT_SMTP_STARTTLS",
    "admin_phone": "NIGHTSHIFT_ALERT_PHONE",
    "whatsapp_account": "NIGHTSHIFT_ALERT_WHATSAPP_ACCOUNT",
    "cooldown_seconds": "NIGHTSHIFT_ALERT_COOLDOWN_SECONDS",
}
CHANNELS = ("email", "whatsapp")


class Alerting(dg.ConfigurableResource):
    """Alert channels and the cooldown (one alert per key per cooldown, kept in the alerts table)."""

    settings: dg.ResourceDependency[Settings]
    whatsapp: dg.ResourceDependency[WhatsAppProvider]
    smtp_host: str = ""
    smtp_port: str = "25"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "nightshift@localhost"
    smtp_to: str = ""  # comma-separated
    smtp_starttls: str = "false"
    admin_phone: str = ""
    whatsapp_account: str = ""  # the provider account tried first for the admin's WhatsApp
    cooldown_seconds: str = "3600"

    @property
    def cooldown(self) -> timedelta:
        try:
            return timedelta(seconds=float(self.cooldown_seconds))
        except ValueError:
            raise dg.Failure(f"NIGHTSHIFT_ALERT_COOLDOWN_SECONDS: expected seconds, got {self.cooldown_seconds!r}",
                             allow_retries=False) from None

    def channels(self, engine: Engine, only: str | None = None) -> list[Channel]:
        found: list[Channel] = []
        if self.smtp_host and only in (None, "email"):
            recipients = tuple(a.strip() for a in self.smtp_to.split(",") if a.strip())
            if not recipients:
                raise dg.Failure("NIGHTSHIFT_SMTP_TO: not set; email alerts need a recipient", allow_retries=False)
            if not self.smtp_port.isdigit():
                raise dg.Failure(f"NIGHTSHIFT_SMTP_PORT: expected a port number, got {self.smtp_port!r}",
                                 allow_retries=False)
            found.append(EmailChannel(self.smtp_host, int(self.smtp_port), self.smtp_from, recipients, self.smtp_user,
                                      self.smtp_password, self.smtp_starttls.strip().lower() in ("1", "true", "yes")))
        if self.admin_phone and only in (None, "whatsapp"):
            notifications = self.settings.notifications
            phone = to_e164(self.admin_phone.strip(), notifications.default_phone_region)
            if phone is None:
                raise dg.Failure("NIGHTSHIFT_ALERT_PHONE: not a valid phone number (write it with its country code)",
                                 allow_retries=False)
            found.append(WhatsAppAlertChannel(engine, notifications, self.whatsapp.backend(), phone,
                                              self.whatsapp_account))
        return found

    def dispatch(self, engine: Engine) -> list[dict[str, Any]]:
        """Send the alerts not sent yet through every configured channel."""
        return dispatch(engine, self.channels(engine))


def alerting_resource(settings: Settings, whatsapp: WhatsAppProvider, environ: Mapping[str, str]) -> Alerting:
    """The resource with a dg.EnvVar for each variable that is set (the others keep their defaults)."""
    values: dict[str, Any] = {field: dg.EnvVar(variable) for field, variable in ENV_FIELDS.items()
                              if environ.get(variable)}
    return Alerting(settings=settings, whatsapp=whatsapp, **values)
