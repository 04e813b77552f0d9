"""The `notifications:` section of the settings: message types, backoff policies, pacing, provider
accounts, the sweep, the circuit breaker and the health thresholds.

A shared core module (not inside the notifications domain) because `nightshift.config` builds it while
loading the settings; every key is checked here and an unknown or bad one raises ConfigError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

PROVIDERS = ("sandbox", "wachap", "meta")
# What a welcome template may name: "Bienvenue {first_name} !"
WELCOME_FIELDS = ("first_name", "last_name", "account")
JITTERS = ("full", "plus_minus")


class NotificationConfigError(ValueError):
    """A `notifications.*` key is unknown or invalid (config turns it into its ConfigError)."""


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before retry n (1-based): base × factor^(n-1), at most cap; jitter spreads an outage's
    backlog (full: uniform in [0, delay]; plus_minus: ±20 %)."""

    base_seconds: float = 1800.0
    factor: float = 2.0
    cap_seconds: float = 86400.0
    max_attempts: int = 10
    jitter: str = "plus_minus"


@dataclass(frozen=True)
class MessageType:
    ttl_seconds: int = 48 * 3600
    backoff: str = "default"
    # Bodies carry temporary passwords or codes: never logged, scrubbed once final, never re-sent
    # after an ambiguous attempt.
    sensitive: bool = False


@dataclass(frozen=True)
class Pacing:
    """At most one send every min_interval_seconds (+ up to jitter_seconds) per account, at most
    max_concurrency in flight; 0 = no pacing."""

    min_interval_seconds: float = 0.0
    max_concurrency: int = 4
    jitter_seconds: float = 0.0

    @property
    def paced(self) -> bool:
        return bool(self.min_interval_seconds or self.jitter_seconds)


@dataclass(frozen=True)
class ProviderAccount:
    """A connected WhatsApp number: messages of its source apps, else of recipients in its phone
    regions, go through it. Secrets (API key, token) come from the environment, never from here."""

    name: str
    source_apps: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    phone_region: str | None = None  # region of national numbers enqueued for this account
    wachap_account_id: str | None = None
    meta_phone_number_id: str | None = None
    pacing: dict[str, Pacing] = field(default_factory=dict)


@dataclass(frozen=True)
class BreakerSettings:
    failure_ratio: float = 0.5
    min_attempts: int = 20
    window_seconds: int = 3600
    probe_interval_seconds: int = 300
    half_open_messages: int = 3


@dataclass(frozen=True)
class HealthThresholds:
    """The old hourly health check's alert levels (`notifications.health:`), which the notification_health
    checks and the alerts sensor compare the whole outbox with."""

    failures_1h: int = 20  # temporary + permanent failures in 1 h (ERROR)
    permanent_24h: int = 5  # permanent failures in 24 h (WARN)
    failure_rate: float = 0.5  # failures over finished attempts in 1 h (ERROR) …
    success_rate: float = 0.9  # … and success under this in 1 h (WARN)
    rate_min_attempts: int = 10  # the two rates count from this many finished attempts in 1 h
    pending_retries: int = 100  # rows waiting for a retry (WARN above this)
    mean_delay_seconds: float = 1800.0  # mean enqueue → sent in 1 h (WARN)
    sweep_late_seconds: float = 900.0  # rows due this long and no sweep finished this long (ERROR)


@dataclass(frozen=True)
class WelcomeSettings:
    """The welcome message to clients an import creates for an account (off unless listed)."""

    template: str
    source_app: str = "imports"
    message_type: str = "account"


def _default_types() -> dict[str, MessageType]:
    day = 24 * 3600
    return {
        "account": MessageType(ttl_seconds=day, sensitive=True),
        "otp": MessageType(ttl_seconds=600, sensitive=True),
        "system": MessageType(),
        "notification": MessageType(),
        "urgent": MessageType(),
        "colis_status": MessageType(),
        "lot_status": MessageType(),
    }


def _default_backoff() -> dict[str, BackoffPolicy]:
    return {
        # 30 min, 1 h, 2 h, 4 h … at most 24 h, 10 attempts.
        "default": BackoffPolicy(),
        # 5 min × 2^n, at most 32 × 5 min, 3 attempts.
        "short": BackoffPolicy(base_seconds=300.0, cap_seconds=32 * 300.0, max_attempts=3, jitter="full"),
    }


def _default_pacing() -> dict[str, Pacing]:
    return {
        "sandbox": Pacing(max_concurrency=8),
        "meta": Pacing(min_interval_seconds=1 / 70, max_concurrency=8),
        "wachap": Pacing(min_interval_seconds=4.0, max_concurrency=1, jitter_seconds=4.0),
    }


@dataclass(frozen=True)
class NotificationSettings:
    default_phone_region: str = "ML"
    # Rows one claim takes (ordered by priority, then due time: priorities 1-2 always come first).
    batch_size: int = 200
    # The share of every batch kept for urgent rows (priority <= urgent_max_priority) that fall due while
    # it is sent: they are claimed mid-batch and go out before the batch's remaining rows.
    urgent_share: float = 0.2
    urgent_max_priority: int = 2
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 20.0
    # How long an ambiguous send waits for a delivery receipt before it is retried (or final).
    reconcile_window_seconds: int = 900
    # The SQLite sweep lease (renewed while the sweep runs; another sweep waits for it).
    sweep_lease_seconds: int = 60
    # A sweep claims no new batch after this long (the next sweep goes on), below the 5-min backstop.
    sweep_max_seconds: int = 240
    sandbox_failure_rate: float = 0.0
    types: dict[str, MessageType] = field(default_factory=_default_types)
    backoff: dict[str, BackoffPolicy] = field(default_factory=_default_backoff)
    pacing: dict[str, Pacing] = field(default_factory=_default_pacing)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    health: HealthThresholds = field(default_factory=HealthThresholds)
    accounts: tuple[ProviderAccount, ...] = ()
    welcome: dict[str, WelcomeSettings] = field(default_factory=dict)  # import account slug -> message

    @property
    def lease_seconds(self) -> float:
        """A claimed row's lease: at least twice the read timeout, so a live send never loses it."""
        return 2 * (self.connect_timeout_seconds + self.read_timeout_seconds)

    def pacing_for(self, provider: str, account: str) -> Pacing:
        for candidate in self.accounts:
            if candidate.name == account and provider in candidate.pacing:
                return candidate.pacing[provider]
        return self.pacing.get(provider, Pacing())

    def account(self, name: str) -> ProviderAccount | None:
        return next((a for a in self.accounts if a.name == name), None)


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NotificationConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _record(cls: type, values: Any, key: str, *, required: tuple[str, ...] = (), skip: tuple[str, ...] = (),
            **fixed: Any) -> Any:
    """A frozen dataclass from a YAML mapping: unknown keys refused, each value of its default's type."""
    values = _mapping(values, key)
    known = {f.name: f for f in fields(cls) if f.name not in skip and f.name not in fixed}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NotificationConfigError(f"{key}.{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
    missing = [name for name in required if name not in values]
    if missing:
        raise NotificationConfigError(f"{key}.{missing[0]}: required")
    template = cls(**{name: "" for name in required}, **fixed)
    converted: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(template, name)
        expected = (str,) if default is None or name in required else (type(default),)
        if expected == (float,) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise NotificationConfigError(f"{key}.{name}: expected a list of names, got {value!r}")
            value = tuple(value)
        elif not isinstance(value, expected) or (expected == (int,) and isinstance(value, bool)):
            raise NotificationConfigError(f"{key}.{name}: expected {expected[0].__name__}, got {value!r}")
        converted[name] = value
    return replace(template, **converted)


def _positive(value: float, key: str, *, zero: bool = False) -> None:
    if value < 0 or (value == 0 and not zero):
        raise NotificationConfigError(f"{key}: must be {'0 or ' if zero else ''}a positive number")


def _pacing(values: Any, key: str) -> Pacing:
    pacing = _record(Pacing, values, key)
    _positive(pacing.min_interval_seconds, f"{key}.min_interval_seconds", zero=True)
    _positive(pacing.jitter_seconds, f"{key}.jitter_seconds", zero=True)
    _positive(pacing.max_concurrency, f"{key}.max_concurrency")
    return pacing


def _pacing_map(values: Any, key: str, base: dict[str, Pacing]) -> dict[str, Pacing]:
    result = dict(base)
    for provider, entry in _mapping(values, key).items():
        if provider not in PROVIDERS:
            raise NotificationConfigError(f"{key}.{provider}: unknown provider (known: {', '.join(PROVIDERS)})")
        result[provider] = _pacing(entry, f"{key}.{provider}")
    return result


def health_thresholds(values: Any, key: str, base: HealthThresholds | None = None) -> HealthThresholds:
    """The thresholds `values` names over `base` (the YAML over the defaults; one run's config over the
    YAML), each checked; a bad one raises NotificationConfigError naming `key`.name."""
    given = _mapping(values, key)
    parsed = _record(HealthThresholds, given, key)
    thresholds = replace(base or HealthThresholds(), **{name: getattr(parsed, name) for name in given})
    for name in ("failures_1h", "permanent_24h", "rate_min_attempts", "mean_delay_seconds", "sweep_late_seconds"):
        _positive(getattr(thresholds, name), f"{key}.{name}")
    _positive(thresholds.pending_retries, f"{key}.pending_retries", zero=True)
    if not 0 < thresholds.failure_rate <= 1:
        raise NotificationConfigError(f"{key}.failure_rate: must be in (0, 1] (0.5 alerts from half the attempts "
                                      "failing)")
    if not 0 <= thresholds.success_rate <= 1:
        raise NotificationConfigError(f"{key}.success_rate: must be between 0 and 1 (0.9 alerts under 90 %)")
    return thresholds


NESTED_SECTIONS = ("types", "backoff", "pacing", "breaker", "health", "accounts", "welcome")


def parse_notification_settings(raw: Any, is_phone_region) -> NotificationSettings:
    """The `notifications:` mapping of the YAML file (None: every default)."""
    key = "notifications"
    values = dict(_mapping(raw, key))
    nested = {name: values.pop(name) for name in NESTED_SECTIONS if name in values}
    settings = _record(NotificationSettings, values, key, skip=NESTED_SECTIONS)
    for name in ("batch_size", "connect_timeout_seconds", "read_timeout_seconds", "reconcile_window_seconds",
                 "sweep_lease_seconds", "sweep_max_seconds"):
        _positive(getattr(settings, name), f"{key}.{name}")
    if not 0 <= settings.sandbox_failure_rate <= 1:
        raise NotificationConfigError(f"{key}.sandbox_failure_rate: must be between 0 and 1")
    if not 0 <= settings.urgent_share < 1:
        raise NotificationConfigError(f"{key}.urgent_share: must be at least 0 and below 1 (0.2 keeps a fifth "
                                      "of every batch for priorities 1-2)")
    if not 1 <= settings.urgent_max_priority <= 5:
        raise NotificationConfigError(f"{key}.urgent_max_priority: must be a priority from 1 to 5")
    if not is_phone_region(settings.default_phone_region):
        raise NotificationConfigError(f"{key}.default_phone_region: {settings.default_phone_region!r} is not an "
                                      "ISO region code known to libphonenumber (e.g. ML, CN, FR)")

    backoff = dict(settings.backoff)
    for name, entry in _mapping(nested.get("backoff"), f"{key}.backoff").items():
        policy = _record(BackoffPolicy, entry, f"{key}.backoff.{name}")
        for part in ("base_seconds", "cap_seconds", "max_attempts"):
            _positive(getattr(policy, part), f"{key}.backoff.{name}.{part}")
        if policy.factor < 1:
            raise NotificationConfigError(f"{key}.backoff.{name}.factor: must be at least 1")
        if policy.jitter not in JITTERS:
            raise NotificationConfigError(f"{key}.backoff.{name}.jitter: {policy.jitter!r} is not one of "
                                          f"{', '.join(JITTERS)}")
        backoff[name] = policy

    types = dict(settings.types)
    for name, entry in _mapping(nested.get("types"), f"{key}.types").items():
        message_type = _record(MessageType, entry, f"{key}.types.{name}")
        _positive(message_type.ttl_seconds, f"{key}.types.{name}.ttl_seconds")
        types[name] = replace(types.get(name, MessageType()), **{
            f.name: getattr(message_type, f.name) for f in fields(MessageType) if f.name in _mapping(entry, "")})
    for name, message_type in types.items():
        if message_type.backoff not in backoff:
            raise NotificationConfigError(f"{key}.types.{name}.backoff: no policy {message_type.backoff!r} "
                                          f"(known: {', '.join(sorted(backoff))})")

    pacing = _pacing_map(nested.get("pacing"), f"{key}.pacing", settings.pacing)
    breaker = _record(BreakerSettings, nested.get("breaker"), f"{key}.breaker")
    for name in ("min_attempts", "window_seconds", "probe_interval_seconds", "half_open_messages"):
        _positive(getattr(breaker, name), f"{key}.breaker.{name}")
    if not 0 < breaker.failure_ratio <= 1:
        raise NotificationConfigError(f"{key}.breaker.failure_ratio: must be in (0, 1]")
    health = health_thresholds(nested.get("health"), f"{key}.health")

    accounts_raw = nested.get("accounts") or []
    if not isinstance(accounts_raw, list):
        raise NotificationConfigError(f"{key}.accounts: expected a list of accounts (each with a name)")
    accounts = []
    for index, entry in enumerate(accounts_raw):
        where = f"{key}.accounts[{index}]"
        entry = dict(_mapping(entry, where))
        account_pacing = _pacing_map(entry.pop("pacing", None), f"{where}.pacing", {})
        account = _record(ProviderAccount, entry, where, required=("name",), skip=("pacing",),
                          pacing=account_pacing)
        for region in (*account.regions, *([account.phone_region] if account.phone_region else [])):
            if not is_phone_region(region):
                raise NotificationConfigError(f"{where}.regions: {region!r} is not an ISO region code known to "
                                              "libphonenumber")
        if any(a.name == account.name for a in accounts):
            raise NotificationConfigError(f"{where}.name: {account.name!r} is listed twice")
        accounts.append(account)

    welcome = {}
    for slug, entry in _mapping(nested.get("welcome"), f"{key}.welcome").items():
        message = _record(WelcomeSettings, entry, f"{key}.welcome.{slug}", required=("template",))
        if message.message_type not in types:
            raise NotificationConfigError(f"{key}.welcome.{slug}.message_type: unknown type {message.message_type!r}")
        try:
            message.template.format_map(dict.fromkeys(WELCOME_FIELDS, ""))
        except (KeyError, ValueError, IndexError) as exc:
            raise NotificationConfigError(f"{key}.welcome.{slug}.template: {exc} is not a field it can use "
                                          f"(write {{first_name}}, {{last_name}} or {{account}})") from None
        welcome[slug] = message

    return replace(settings, types=types, backoff=backoff, pacing=pacing, breaker=breaker, health=health,
                   accounts=tuple(accounts), welcome=welcome)
