"""Alerts to the admin's WhatsApp, through a provider account other than the failing one and never one
whose breaker is open. Sent directly (not through the outbox, whose sweep may be what is failing); it is
the only message nightshift sends about its own health, and only when an alert is raised or tested."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from nightshift.alerts import Alert
from nightshift.masking import mask_phone
from nightshift.notification_settings import NotificationSettings
from nightshift.notifications.breaker import OPEN, states
from nightshift.notifications.classify import Outcome, classify
from nightshift.notifications.outbox import DEFAULT_ACCOUNT
from nightshift.notifications.providers import Backend, OutboundMessage
from nightshift.notifications.sweep import provider_account_id

MAX_CHARS = 1000


class NoAccountForAlert(RuntimeError):
    """Every provider account is the failing one or has its breaker open."""


@dataclass
class WhatsAppAlertChannel:
    engine: Engine
    settings: NotificationSettings
    backend: Backend
    phone: str  # E.164 of the admin
    preferred_account: str = ""  # tried first when it is usable
    name: str = "whatsapp"

    def candidates(self, failing: str | None) -> list[str]:
        """Usable accounts, preferred first: not `failing`, breaker not open."""
        names = [account.name for account in self.settings.accounts] + [DEFAULT_ACCOUNT]
        if self.preferred_account in names:
            names.remove(self.preferred_account)
            names.insert(0, self.preferred_account)
        opened = {name for name, state in states(self.engine, self.backend.name).items() if state.state == OPEN}
        return [name for name in names if name != failing and name not in opened]

    def send(self, alert: Alert) -> None:
        failing = (alert.details or {}).get("provider_account")
        usable = self.candidates(failing)
        if not usable:
            raise NoAccountForAlert(f"no provider account to alert {mask_phone(self.phone)} through: "
                                    f"{failing or 'every account'} failing, the others' breakers open")
        account = usable[0]
        text = f"{alert.subject}\n{alert.text}"[:MAX_CHARS]
        reply = self.backend.send(OutboundMessage(notification_id=-alert.id, to=self.phone, body=text,
                                                  account=account),
                                  provider_account_id(self.settings, self.backend.name, account))
        outcome = classify(self.backend.name, reply.http_status, reply.error_code, reply.transport).outcome
        if outcome != Outcome.SENT:
            raise RuntimeError(f"WhatsApp alert through {account} not sent: {outcome} "
                               f"({reply.error_code or reply.http_status})")
