"""The WhatsApp provider as a Dagster resource: one resource, the backend chosen by
NIGHTSHIFT_WHATSAPP_PROVIDER (sandbox | wachap | meta; sandbox on a fresh machine).

Keys, tokens and ids come from the environment through dg.EnvVar, so their values never appear in run
config, the UI or logs.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from nightshift.config import Settings
from nightshift.notification_settings import PROVIDERS
from nightshift.notifications.providers import (
    META_DEFAULT_URL,
    WACHAP_DEFAULT_URL,
    Backend,
    MetaBackend,
    SandboxBackend,
    Timeouts,
    WaChapBackend,
)

# Resource field -> the environment variable that sets it.
ENV_FIELDS = {
    "provider": "NIGHTSHIFT_WHATSAPP_PROVIDER",
    "wachap_base_url": "NIGHTSHIFT_WACHAP_BASE_URL",
    "wachap_api_key": "NIGHTSHIFT_WACHAP_API_KEY",
    "wachap_account_id": "NIGHTSHIFT_WACHAP_ACCOUNT_ID",
    "meta_base_url": "NIGHTSHIFT_META_BASE_URL",
    "meta_token": "NIGHTSHIFT_META_TOKEN",
    "meta_phone_number_id": "NIGHTSHIFT_META_PHONE_NUMBER_ID",
    "meta_app_secret": "NIGHTSHIFT_META_APP_SECRET",
}
SANDBOX_NOTICE = "sandbox: nothing left this machine (set NIGHTSHIFT_WHATSAPP_PROVIDER=wachap or meta to send)"


class WhatsAppProvider(dg.ConfigurableResource):
    """Sends WhatsApp messages through the configured backend; timeouts and the sandbox failure rate
    come from the `notifications:` settings."""

    settings: dg.ResourceDependency[Settings]
    provider: str = "sandbox"
    wachap_base_url: str = WACHAP_DEFAULT_URL
    wachap_api_key: str = ""
    wachap_account_id: str = ""
    meta_base_url: str = META_DEFAULT_URL
    meta_token: str = ""
    meta_phone_number_id: str = ""
    # Verifies status webhooks (X-Hub-Signature-256); the webhook handling reads it.
    meta_app_secret: str = ""

    def backend(self) -> Backend:
        notifications = self.settings.notifications
        timeouts = Timeouts(notifications.connect_timeout_seconds, notifications.read_timeout_seconds)
        name = self.provider.strip().lower()
        if name not in PROVIDERS:
            raise dg.Failure(f"NIGHTSHIFT_WHATSAPP_PROVIDER: {self.provider!r} is not one of "
                             f"{', '.join(PROVIDERS)}", allow_retries=False)
        if name == "sandbox":
            return SandboxBackend(notifications.sandbox_failure_rate)
        if name == "wachap":
            self._require(("wachap_api_key", "wachap_account_id"))
            return WaChapBackend(self.wachap_base_url, self.wachap_api_key, self.wachap_account_id, timeouts)
        self._require(("meta_token", "meta_phone_number_id"))
        return MetaBackend(self.meta_base_url, self.meta_token, self.meta_phone_number_id, timeouts)

    def _require(self, names: tuple[str, ...]) -> None:
        missing = [ENV_FIELDS[name] for name in names if not getattr(self, name)]
        if missing:
            raise dg.Failure(f"{', '.join(missing)}: not set; the {self.provider} provider needs "
                             f"{'it' if len(missing) == 1 else 'them'} (or use NIGHTSHIFT_WHATSAPP_PROVIDER=sandbox)",
                             allow_retries=False)

    @property
    def notice(self) -> str:
        """What the UI says about where messages went."""
        return SANDBOX_NOTICE if self.provider.strip().lower() == "sandbox" else f"sent through {self.provider}"


def whatsapp_provider(settings: Settings, environ: Mapping[str, str]) -> WhatsAppProvider:
    """The resource with a dg.EnvVar for each variable that is set (the others keep their defaults)."""
    values: dict[str, Any] = {field: dg.EnvVar(variable) for field, variable in ENV_FIELDS.items()
                              if environ.get(variable)}
    return WhatsAppProvider(settings=settings, **values)
