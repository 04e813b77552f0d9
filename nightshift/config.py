"""Settings: NIGHTSHIFT_* environment variables plus an optional YAML file for structured settings.

One place for every knob. Environment variables win over the YAML file for the scalar settings they
name; structured sections (imports, later providers, retry policies, thresholds, retention) live in YAML.
Invalid settings fail fast with a ConfigError that names the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from nightshift.notification_settings import NotificationConfigError, NotificationSettings, parse_notification_settings

ENV_PREFIX = "NIGHTSHIFT_"
DEFAULT_CONFIG_FILE = "nightshift.yaml"
LANGUAGES = ("fr", "en")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key and what to do."""


@dataclass(frozen=True)
class ImportSettings:
    max_bytes: int = 200 * 1024 * 1024
    max_rows: int = 1_000_000
    max_cells: int = 30_000_000
    abort_invalid_ratio: float = 0.5
    default_phone_region: str = "ML"
    create_categories: bool = True
    # Below 5 it means every pass of the daemon, which looks at sensors every 5 s at most: an interval of 5
    # fell to 5 or 10 s, and a file is registered at the second tick that sees it unchanged.
    sensor_interval_seconds: int = 3
    # A file the sensor sees is registered once its size and mtime stay the same this long (within the
    # tick; 0: until the next tick). Raise it for uploads that pause mid-file (slow network shares).
    settle_seconds: int = 2
    # A registered import whose run has not started it after this long (and has no queued or running
    # run) is re-requested once by import_failure_sensor.
    stalled_after_seconds: int = 900
    # Processes that validate the chunks of a file of at least parallel_min_bytes, the import's own
    # included (0: one per core, at most 4; 1: the import's process alone).
    workers: int = 0
    parallel_min_bytes: int = 16 * 1024 * 1024
    # Per account (its slug): a header its files write → the profile field it means, for headers that match
    # no accepted spelling. nightshift.imports.column_maps checks the fields (this module cannot know them).
    column_maps: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RetentionSettings:
    """The `retention:` section. `policies` maps a policy name to overrides of its age (`days:` or
    `hours:`) and `enabled:`; nightshift.retention.policies checks names and values against the policies
    it declares (this module cannot know them)."""

    batch_size: int = 10_000
    policies: dict = field(default_factory=dict)
    # Dagster instance: finished runs of these job families older than run_days are deleted; at most
    # instance_items_per_run runs and as many import_files partitions are retired per cleanup run.
    run_days: int = 30
    run_families: list = field(default_factory=lambda: ["sweeps", "maintenance"])
    instance_items_per_run: int = 1_000


@dataclass(frozen=True)
class QuotaSettings:
    # Largest hold one reservation takes, whatever its estimate: worst-case estimates cannot fill an
    # account with phantom holds (the actual is settled in full even above the hold).
    max_hold_tokens: int = 8_000
    # How long after its month ends a period still accepts the settle of a reservation it holds.
    settle_grace_hours: int = 48
    # A hold expires this long after its request's timeout (the reservation's ttl).
    hold_margin_seconds: int = 60
    default_ttl_seconds: int = 600
    # The old monthly report's "low quota" line: accounts with fewer tokens left than this.
    low_balance_tokens: int = 10_000
    # The first month of the token_periods partitions (YYYY-MM): the earliest month a backfill can open.
    first_month: str = "2026-01"


# The account `nightshift init` creates on a fresh machine (no account yet) so the samples, imported without
# an account, get their AI texts metered: it is ai.default_account's default.
DEMO_ACCOUNT = "demo"


@dataclass(frozen=True)
class AISettings:
    """The `ai:` section; the provider itself comes from NIGHTSHIFT_AI_BASE_URL / _API_KEY / _MODEL."""

    # Content kinds generated per business (description, meta_description, faq).
    kinds: list = field(default_factory=lambda: ["description", "meta_description"])
    # The account businesses imported without one are charged to (a slug); empty: they are skipped. The
    # default names the local demo account `nightshift init` creates on a machine without accounts.
    default_account: str = DEMO_ACCOUNT
    # Client-side limits shared by every process through the database (the old system: 5 a minute).
    requests_per_minute: int = 5
    tokens_per_minute: int = 40_000
    timeout_seconds: float = 60.0
    # HTTP retries of one call on 408/409/429/5xx, exponential from retry_base_seconds with jitter.
    http_retries: int = 3
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 30.0
    # Attempts of one request (Adha: 5 s, 10 s, 20 s apart, at most 3, then dead letter) and re-asks of
    # one attempt whose output failed validation (each metered).
    max_attempts: int = 3
    attempt_base_seconds: float = 5.0
    max_reasks: int = 2
    lease_seconds: int = 600
    # Premium 500 / organic 220 characters of source text in a prompt (the old context limits).
    context_chars: int = 500
    temperature: float = 0.7
    forbidden_phrases: list = field(default_factory=lambda: [
        "en tant qu'ia", "en tant que modèle de langage", "as an ai", "je ne peux pas", "lorem ipsum"])
    # Nightly regeneration: contents older than this or of an older template version, within the budget.
    regenerate_after_days: int = 90
    regeneration_token_budget: int = 50_000
    sensor_interval_seconds: int = 60
    # How often requests waiting for quota try again (a top-up or a new month lets them through).
    quota_recheck_seconds: int = 600


def _data_folder(name: str) -> property:
    def folder(settings: Settings) -> Path:
        return settings.data_dir / name

    return property(folder, doc=f"data_dir/{name}/")


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    timezone: str
    lang: str
    config_file: Path | None
    imports: ImportSettings = field(default_factory=ImportSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    ai: AISettings = field(default_factory=AISettings)
    # The command's `nightshift import --map`: a header of its file → the field it means, over the account's
    # imports.column_maps. Never read from YAML or the environment: it names one file's headers.
    column_map: dict = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    uploads_dir = _data_folder("uploads")
    processed_dir = _data_folder("processed")
    failed_dir = _data_folder("failed")
    reports_dir = _data_folder("reports")

    def ensure_data_dirs(self) -> None:
        for folder in (self.uploads_dir, self.processed_dir, self.failed_dir, self.reports_dir):
            folder.mkdir(parents=True, exist_ok=True)


def _section(raw: dict[str, Any], name: str, cls: type) -> Any:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: expected a mapping of settings, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
    defaults = cls()
    converted = {}
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{name}.{key}: expected {expected.__name__}, got {value!r}")
        converted[key] = value
    return cls(**converted)


def _validate_imports(imports: ImportSettings) -> None:
    for key in ("max_bytes", "max_rows", "max_cells", "sensor_interval_seconds", "stalled_after_seconds"):
        if getattr(imports, key) <= 0:
            raise ConfigError(f"imports.{key}: must be a positive integer")
    if not 0 <= imports.settle_seconds <= 30:
        raise ConfigError("imports.settle_seconds: must be from 0 (the next tick decides) to 30 (a sensor tick "
                          "has 60 s)")
    if imports.parallel_min_bytes < 0:
        raise ConfigError("imports.parallel_min_bytes: must be 0 or a positive number of bytes")
    if imports.workers < 0:
        raise ConfigError("imports.workers: must be 0 (one per core) or a positive number of processes")
    if not 0 < imports.abort_invalid_ratio <= 1:
        raise ConfigError("imports.abort_invalid_ratio: must be in (0, 1]")
    if not is_phone_region(imports.default_phone_region):
        raise ConfigError(f"imports.default_phone_region: {imports.default_phone_region!r} is not {PHONE_REGION}")
    for account, column_map in imports.column_maps.items():
        if not isinstance(column_map, dict):
            raise ConfigError(f"imports.column_maps.{account}: expected a mapping of a header to a field "
                              f"(\"Raison sociale\": nom), got {column_map!r}")
        for header, name in column_map.items():
            if not (isinstance(header, str) and header.strip() and isinstance(name, str) and name.strip()):
                raise ConfigError(f"imports.column_maps.{account}.{header}: expected a header mapped to a field "
                                  f"name, got {header!r}: {name!r}")


def _validate_quotas(quotas: QuotaSettings) -> None:
    for key in ("max_hold_tokens", "default_ttl_seconds"):
        if getattr(quotas, key) <= 0:
            raise ConfigError(f"quotas.{key}: must be a positive integer")
    for key in ("settle_grace_hours", "hold_margin_seconds", "low_balance_tokens"):
        if getattr(quotas, key) < 0:
            raise ConfigError(f"quotas.{key}: must be 0 or a positive integer")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", quotas.first_month):
        raise ConfigError(f"quotas.first_month: {quotas.first_month!r} is not a month written YYYY-MM (e.g. 2026-01)")


AI_KINDS = ("description", "meta_description", "faq")


def _validate_ai(ai: AISettings) -> None:
    for key in ("requests_per_minute", "tokens_per_minute", "max_attempts", "lease_seconds", "context_chars",
                "regenerate_after_days", "sensor_interval_seconds", "quota_recheck_seconds"):
        if getattr(ai, key) <= 0:
            raise ConfigError(f"ai.{key}: must be a positive integer")
    for key in ("http_retries", "max_reasks", "regeneration_token_budget"):
        if getattr(ai, key) < 0:
            raise ConfigError(f"ai.{key}: must be 0 or a positive integer")
    for key in ("timeout_seconds", "retry_base_seconds", "retry_cap_seconds", "attempt_base_seconds"):
        if getattr(ai, key) <= 0:
            raise ConfigError(f"ai.{key}: must be a positive number of seconds")
    unknown = [kind for kind in ai.kinds if kind not in AI_KINDS]
    if unknown or not ai.kinds:
        raise ConfigError(f"ai.kinds: {unknown or ai.kinds!r} — use some of {', '.join(AI_KINDS)}")
    if not all(isinstance(phrase, str) and phrase.strip() for phrase in ai.forbidden_phrases):
        raise ConfigError("ai.forbidden_phrases: expected a list of non-empty texts")


def _validate_retention(retention: RetentionSettings) -> None:
    for key in ("batch_size", "run_days", "instance_items_per_run"):
        if getattr(retention, key) <= 0:
            raise ConfigError(f"retention.{key}: must be a positive integer")
    for name, overrides in retention.policies.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"retention.policies.{name}: expected a mapping (days:, hours:, enabled:), "
                              f"got {overrides!r}")


PHONE_REGION = "an ISO 3166 region code known to libphonenumber (e.g. ML, FR, CD, CI, SN)"


def is_phone_region(code: str) -> bool:
    """A region libphonenumber can read numbers of (upper case, as settings and accounts store it)."""
    import phonenumbers  # only the region table; kept local so config loads fast

    return code in phonenumbers.SUPPORTED_REGIONS


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ

    config_name = env.get(f"{ENV_PREFIX}CONFIG")
    config_path = Path(config_name or DEFAULT_CONFIG_FILE)
    raw: dict[str, Any] = {}
    if config_path.exists():
        try:
            raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"NIGHTSHIFT_CONFIG: {config_path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"NIGHTSHIFT_CONFIG: {config_path} must hold a mapping at the top level")
    elif config_name:
        raise ConfigError(f"NIGHTSHIFT_CONFIG: file {config_path} does not exist")

    known_top = {"database_url", "data_dir", "timezone", "lang", "imports", "retention", "quotas", "notifications",
                 "ai"}
    unknown = sorted(set(raw) - known_top)
    if unknown:
        known = ", ".join(sorted(known_top))
        raise ConfigError(f"{unknown[0]}: unknown setting in {config_path} (known: {known})")

    def scalar(key: str, default: str) -> str:
        value = env.get(ENV_PREFIX + key.upper())
        if value is None:
            value = raw.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{ENV_PREFIX}{key.upper()}: expected a non-empty text value, got {value!r}")
        return value.strip()

    data_dir = Path(scalar("data_dir", "./data"))
    database_url = scalar("database_url", f"sqlite:///{(data_dir / 'nightshift.db').as_posix()}")
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"NIGHTSHIFT_DATABASE_URL: not a database URL ({exc})") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"NIGHTSHIFT_DATABASE_URL: backend {url.get_backend_name()!r} is not supported "
            "(use sqlite:///path or postgresql+psycopg://user@host/db)"
        )

    timezone = scalar("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"NIGHTSHIFT_TIMEZONE: {timezone!r} is not an IANA time zone (e.g. UTC, Africa/Bamako)"
        ) from None

    lang = scalar("lang", "fr").lower()
    if lang not in LANGUAGES:
        raise ConfigError(f"NIGHTSHIFT_LANG: {lang!r} is not supported (use one of {', '.join(LANGUAGES)})")

    imports = _section(raw, "imports", ImportSettings)
    _validate_imports(imports)
    quotas = _section(raw, "quotas", QuotaSettings)
    _validate_quotas(quotas)
    retention = _section(raw, "retention", RetentionSettings)
    _validate_retention(retention)
    ai = _section(raw, "ai", AISettings)
    _validate_ai(ai)
    try:
        notifications = parse_notification_settings(raw.get("notifications"), is_phone_region)
    except NotificationConfigError as exc:
        raise ConfigError(str(exc)) from None

    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        timezone=timezone,
        lang=lang,
        config_file=config_path if config_path.exists() else None,
        imports=imports,
        quotas=quotas,
        retention=retention,
        notifications=notifications,
        ai=ai,
    )
