"""Every retention policy, declared once: what it covers, the column its age is read from, the rows it may
touch, its default age and the old command option that overrides it.

The token ledger is never deleted: it is the audit trail of every token granted, reserved and spent, so
a policy over it is refused (here and in the YAML settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

import sqlalchemy as sa

from nightshift.config import ConfigError, RetentionSettings
from nightshift.db.schema import (
    IMPORT_IN_PROGRESS,
    ai_requests,
    alerts,
    imports,
    notification_attempts,
    notifications,
    processed_messages,
    token_ledger,
    webhook_events,
)

NEVER_DELETED = (token_ledger.name,)
AI_TERMINAL = ("completed", "failed", "timeout")
AI_OPEN = ("pending", "processing")
NOTIFICATION_FINAL = ("sent", "delivered", "read", "failed_final", "expired", "cancelled")
# The data folders whose files the import_files policy ages out (sub-folders of settings.data_dir).
FILE_FOLDERS = ("processed", "failed", "reports")

ROWS, IMPORT_FILES_AND_LOGS = "rows", "imports"


@dataclass(frozen=True)
class Policy:
    name: str
    group: str  # the cleanup op that runs it
    table: sa.Table | None  # None: the files of FILE_FOLDERS
    age_column: str  # a column of `table`; for files, the modification time
    covers: sa.ColumnElement[bool] | None  # the rows the policy is about, whatever their age
    covers_text: str
    max_age: timedelta
    unit: str  # days | hours: how the age is written in the settings and options
    option: str  # the CLI option and the run config field that override the age
    action: str = "delete"  # delete | timeout (abandoned AI requests are closed, not deleted)
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.table is not None and self.table.name in NEVER_DELETED:
            raise ValueError(f"retention policy {self.name!r}: {self.table.name} is the audit trail, never deleted")

    @property
    def target(self) -> str:
        return self.table.name if self.table is not None else "files in " + ", ".join(f"data/{f}" for f in FILE_FOLDERS)

    @property
    def age_value(self) -> int:
        seconds = self.max_age.total_seconds()
        return int(seconds // (86400 if self.unit == "days" else 3600))


def _days(n: int) -> timedelta:
    return timedelta(days=n)


POLICIES: tuple[Policy, ...] = (
    Policy("processed_messages", ROWS, processed_messages, "processed_at", None,
           "every idempotency key of an inbound message", _days(7), "days", "processed_messages_days"),
    Policy("ai_requests_abandoned", ROWS, ai_requests, "created_at",
           ai_requests.c.status.in_(AI_OPEN),
           "pending or processing past their lease, no attempt scheduled, no open token reservation: turned "
           "timeout (error_code abandoned), not deleted",
           timedelta(hours=12), "hours", "abandoned_requests_hours", action="timeout"),
    # Aged from its last change: a request timed out today is kept as long as one completed today.
    Policy("ai_requests", ROWS, ai_requests, "updated_at", ai_requests.c.status.in_(AI_TERMINAL),
           "completed, failed or timeout, no attempt scheduled, no open token reservation", _days(14), "days",
           "completed_requests_days"),
    Policy("notification_attempts", ROWS, notification_attempts, "started_at", None,
           "every attempt", _days(30), "days", "attempts_days"),
    Policy("notifications", ROWS, notifications, "created_at", notifications.c.status.in_(NOTIFICATION_FINAL),
           "final (sent, delivered, read, failed_final, expired, cancelled), no younger attempt, no webhook "
           "event still to apply", _days(90), "days", "notifications_days"),
    Policy("webhook_events", ROWS, webhook_events, "applied_at", webhook_events.c.applied_at.is_not(None),
           "applied", _days(30), "days", "webhook_events_days"),
    Policy("alerts", ROWS, alerts, "created_at", None, "every alert", _days(90), "days", "alerts_days"),
    Policy("import_files", IMPORT_FILES_AND_LOGS, None, "mtime", None,
           "regular files (never symlinks), unless an unfinished or younger import points to them",
           _days(30), "days", "files_days"),
    Policy("imports", IMPORT_FILES_AND_LOGS, imports, "created_at", imports.c.status.not_in(IMPORT_IN_PROGRESS),
           "finished imports and their import_errors, unless their file is still kept or a younger import is "
           "a duplicate of them", _days(90), "days", "imports_days"),
)
POLICY_NAMES = tuple(p.name for p in POLICIES)
BY_NAME: Mapping[str, Policy] = {p.name: p for p in POLICIES}
OPTIONS: Mapping[str, str] = {p.option: p.name for p in POLICIES}


@dataclass(frozen=True)
class Retention:
    """The policies as they apply: defaults, then the YAML settings, then a run's overrides."""

    policies: tuple[Policy, ...]
    batch_size: int

    def policy(self, name: str) -> Policy:
        return next(p for p in self.policies if p.name == name)

    def selected(self, only: list[str] | tuple[str, ...] = (), group: str | None = None) -> list[Policy]:
        unknown = sorted(set(only) - set(POLICY_NAMES))
        if unknown:
            raise ConfigError(f"--only {unknown[0]}: no such retention policy (known: {', '.join(POLICY_NAMES)})")
        return [p for p in self.policies
                if p.enabled and (not only or p.name in only) and (group is None or p.group == group)]

    def with_ages(self, ages: Mapping[str, int | None]) -> Retention:
        """Ages given by option name (`files_days=…`), as the old commands took them; None keeps the age."""
        policies = list(self.policies)
        for option, value in ages.items():
            if value is None:
                continue
            if option not in OPTIONS:
                raise ConfigError(f"{option}: not a retention option (known: {', '.join(sorted(OPTIONS))})")
            index = POLICY_NAMES.index(OPTIONS[option])
            policies[index] = _aged(policies[index], value, f"--{option.replace('_', '-')}")
        return replace(self, policies=tuple(policies))


def _aged(policy: Policy, value: object, where: str) -> Policy:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: expected a positive whole number of {policy.unit}, got {value!r}")
    age = timedelta(days=value) if policy.unit == "days" else timedelta(hours=value)
    return replace(policy, max_age=age)


def resolve(settings: RetentionSettings) -> Retention:
    """The declared policies with the `retention.policies` overrides of the settings; a ConfigError names
    the key of an unknown policy or setting, a bad value, or a policy over the token ledger."""
    policies = list(POLICIES)
    for name, overrides in settings.policies.items():
        where = f"retention.policies.{name}"
        if name in NEVER_DELETED:
            raise ConfigError(f"{where}: the token ledger is the audit trail and is never deleted; remove this entry")
        if name not in BY_NAME:
            raise ConfigError(f"{where}: no such retention policy (known: {', '.join(POLICY_NAMES)})")
        index = POLICY_NAMES.index(name)
        policy = policies[index]
        known = {policy.unit, "enabled"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
        if policy.unit in overrides:
            policy = _aged(policy, overrides[policy.unit], f"{where}.{policy.unit}")
        if "enabled" in overrides:
            if not isinstance(overrides["enabled"], bool):
                raise ConfigError(f"{where}.enabled: expected true or false, got {overrides['enabled']!r}")
            policy = replace(policy, enabled=overrides["enabled"])
        policies[index] = policy
    return Retention(tuple(policies), settings.batch_size)
