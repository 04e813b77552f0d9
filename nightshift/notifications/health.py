"""Health of the notifications, per source_app and per provider account: what the old hourly health
check and per-app dashboards showed, from the tables (any number of sweep processes agree).

Per window (1 h and 24 h by default): attempts, sent, delivered, read, temporary and permanent failures,
success rate (sent over finished attempts), delivery rate (delivered or read over sent), enqueue → sent
latency (p50, p95, mean). Now: backlog (due rows), oldest due age, pending retries, breaker states.
The checks compare the whole outbox (the admin's view) with the thresholds of `notifications.health:`
(defaults: the old health check's).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nightshift.alerts import raise_alert, resolve_alert
from nightshift.db.engine import read_transaction, utc
from nightshift.db.schema import notification_attempts, notifications, provider_breakers
from nightshift.notification_settings import HealthThresholds
from nightshift.notifications.outbox import DUE_STATUSES, now_utc

TEMPORARY_OUTCOMES = ("temporary", "ambiguous", "account")
PERMANENT_OUTCOMES = ("permanent",)
ERROR, WARN = "ERROR", "WARN"


@dataclass
class Window:
    attempts: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    temporary_failures: int = 0
    permanent_failures: int = 0
    success_rate: float | None = None
    delivery_rate: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_mean_s: float | None = None


@dataclass
class Scope:
    """One source_app, one provider account, or everything."""

    name: str
    windows: dict[int, Window] = field(default_factory=dict)  # hours → figures
    backlog: int = 0
    oldest_due_age_s: float = 0.0
    pending_retries: int = 0
    breakers: dict[str, str] = field(default_factory=dict)  # provider account → state

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["windows"] = {f"{hours}h": figures for hours, figures in shown["windows"].items()}
        return shown


@dataclass
class Health:
    now: datetime
    hours: tuple[int, ...]
    total: Scope
    apps: dict[str, Scope]
    accounts: dict[str, Scope]

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "total": self.total.as_dict(),
                "apps": {name: scope.as_dict() for name, scope in sorted(self.apps.items())},
                "accounts": {name: scope.as_dict() for name, scope in sorted(self.accounts.items())}}


@dataclass(frozen=True)
class Finding:
    check: str
    passed: bool
    severity: str
    description: str
    value: float


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def report(engine: Engine, *, hours: tuple[int, ...] = (1, 24), source_app: str | None = None,
           now: datetime | None = None) -> Health:
    """The figures, of one app's rows only when `source_app` is given."""
    now = now or now_utc()
    since = {h: now - timedelta(hours=h) for h in hours}
    oldest = min(since.values())
    app_filter = [notifications.c.source_app == source_app] if source_app is not None else []
    joined = notification_attempts.join(notifications, notifications.c.id == notification_attempts.c.notification_id)
    # Attempts counted in the database, per app, account, outcome and the windows they fall in.
    in_window = [sa.case((notification_attempts.c.started_at >= since[h], 1), else_=0) for h in hours]
    attempt_keys = (notifications.c.source_app, notification_attempts.c.provider_account,
                    notification_attempts.c.outcome, *in_window)
    n = notifications.c
    with read_transaction(engine) as conn:
        attempts = conn.execute(
            sa.select(*attempt_keys, sa.func.count()).select_from(joined)
            .where(notification_attempts.c.started_at >= oldest, *app_filter).group_by(*attempt_keys)).all()
        # Rows sent, delivered, read in each window, counted in the database; the latencies are read
        # row by row (quantiles), with the windows each row was sent in.
        receipts = conn.execute(
            sa.select(n.source_app, n.provider_account,
                      *(sa.func.sum(sa.case((n.sent_at >= since[h], 1), else_=0)) for h in hours),
                      *(sa.func.sum(sa.case((sa.and_(n.sent_at >= since[h], sa.or_(
                          n.delivered_at.is_not(None), n.read_at.is_not(None))), 1), else_=0)) for h in hours),
                      *(sa.func.sum(sa.case((n.delivered_at >= since[h], 1), else_=0)) for h in hours),
                      *(sa.func.sum(sa.case((n.read_at >= since[h], 1), else_=0)) for h in hours))
            .where(sa.or_(n.sent_at >= oldest, n.delivered_at >= oldest, n.read_at >= oldest), *app_filter)
            .group_by(n.source_app, n.provider_account)).all()
        sent_rows = conn.execute(
            sa.select(n.source_app, n.provider_account, n.created_at, n.sent_at,
                      *(sa.case((n.sent_at >= since[h], 1), else_=0) for h in hours))
            .where(n.sent_at >= oldest, *app_filter)).all()
        due = conn.execute(
            sa.select(notifications.c.source_app, notifications.c.provider_account, sa.func.count(),
                      sa.func.min(notifications.c.next_attempt_at))
            .where(notifications.c.status.in_(DUE_STATUSES), notifications.c.next_attempt_at <= now, *app_filter)
            .group_by(notifications.c.source_app, notifications.c.provider_account)).all()
        retries = conn.execute(
            sa.select(notifications.c.source_app, notifications.c.provider_account, sa.func.count())
            .where(notifications.c.status == "failed_retry", *app_filter)
            .group_by(notifications.c.source_app, notifications.c.provider_account)).all()
        breakers = {r.provider_account: r.state for r in conn.execute(
            sa.select(provider_breakers.c.provider_account, provider_breakers.c.state))}

    total = Scope("all")
    apps: dict[str, Scope] = {}
    accounts: dict[str, Scope] = {}

    app_accounts: dict[str, set[str]] = defaultdict(set)

    def scopes_of(app: str, account: str | None) -> list[Scope]:
        account = account or "default"
        app_accounts[app].add(account)
        return [total, apps.setdefault(app, Scope(app)), accounts.setdefault(account, Scope(account))]

    outcomes: dict[tuple[int, int], Counter] = defaultdict(Counter)  # (id(scope), hours) → outcome counts
    latencies: dict[tuple[int, int], list[float]] = defaultdict(list)
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for row in attempts:
        app, account, outcome, *flags, count = row
        for scope in scopes_of(app, account):
            for h, inside in zip(hours, flags, strict=True):
                if inside:
                    outcomes[(id(scope), h)][outcome] += count
    width = len(hours)
    for app, account, *sums in receipts:
        for scope in scopes_of(app, account):
            for i, h in enumerate(hours):
                tally = counts[(id(scope), h)]
                for j, name in enumerate(("sent_rows", "reached", "delivered", "read")):
                    tally[name] += int(sums[j * width + i] or 0)
    # Latencies per (app, account) first: the row loop does one subtraction per row, not one per scope.
    grouped: dict[tuple[str, str | None, int], list[float]] = defaultdict(list)
    for app, account, created_at, sent_at, *flags in sent_rows:
        latency = max(0.0, (sent_at - created_at).total_seconds())
        for h, inside in zip(hours, flags, strict=True):
            if inside:
                grouped[(app, account, h)].append(latency)
    for (app, account, h), values in grouped.items():
        for scope in scopes_of(app, account):
            latencies[(id(scope), h)].extend(values)
    for row in due:
        for scope in scopes_of(row.source_app, row.provider_account):
            scope.backlog += row[2]
            age = (now - utc(row[3])).total_seconds() if row[3] is not None else 0.0
            scope.oldest_due_age_s = round(max(scope.oldest_due_age_s, age), 1)
    for row in retries:
        for scope in scopes_of(row.source_app, row.provider_account):
            scope.pending_retries += row[2]
    # An app sees the breakers of the accounts its rows went through; the admin sees every breaker.
    for account, state in breakers.items():
        if source_app is None:
            accounts.setdefault(account, Scope(account))
        if account in accounts:
            accounts[account].breakers[account] = state
            total.breakers[account] = state
    for app in apps.values():
        app.breakers = {account: breakers[account] for account in sorted(app_accounts[app.name])
                        if account in breakers}

    for scope in [total, *apps.values(), *accounts.values()]:
        for h in hours:
            seen, tally, lat = outcomes[(id(scope), h)], counts[(id(scope), h)], latencies[(id(scope), h)]
            temporary = sum(seen[o] for o in TEMPORARY_OUTCOMES)
            permanent = sum(seen[o] for o in PERMANENT_OUTCOMES)
            finished = seen["sent"] + temporary + permanent
            scope.windows[h] = Window(
                attempts=sum(seen.values()), sent=seen["sent"], delivered=tally["delivered"], read=tally["read"],
                temporary_failures=temporary, permanent_failures=permanent,
                success_rate=_rate(seen["sent"], finished), delivery_rate=_rate(tally["reached"], tally["sent_rows"]),
                latency_p50_s=_quantile(lat, 0.5), latency_p95_s=_quantile(lat, 0.95),
                latency_mean_s=round(sum(lat) / len(lat), 1) if lat else None)
    return Health(now, hours, total, apps, accounts)


def evaluate(health: Health, thresholds: HealthThresholds, last_sweep_finished_at: datetime | None) -> list[Finding]:
    """The checks, over the whole outbox; the 1 h and 24 h windows must be in the report."""
    hour, day = health.total.windows[1], health.total.windows[24]
    failures = hour.temporary_failures + hour.permanent_failures
    finished = hour.sent + failures
    failure_rate = failures / finished if finished else 0.0
    rated = finished >= thresholds.rate_min_attempts
    open_breakers = sorted(a for a, state in health.total.breakers.items() if state == "open")
    sweep_age = (health.now - last_sweep_finished_at).total_seconds() if last_sweep_finished_at else math.inf
    # Late: rows due for longer than the threshold and no sweep finished within it (a quiet night followed
    # by rows that just fell due is not late, nor is a first sweep still running).
    late = health.total.oldest_due_age_s > thresholds.sweep_late_seconds and sweep_age > thresholds.sweep_late_seconds
    return [
        Finding("failures_1h", failures < thresholds.failures_1h, ERROR,
                f"{failures} failed attempts in 1 h (alert from {thresholds.failures_1h})", failures),
        Finding("permanent_failures_24h", day.permanent_failures < thresholds.permanent_24h, WARN,
                f"{day.permanent_failures} permanent failures in 24 h (alert from {thresholds.permanent_24h})",
                day.permanent_failures),
        Finding("failure_rate_1h", not rated or failure_rate < thresholds.failure_rate, ERROR,
                f"failure rate {failure_rate:.0%} over {finished} finished attempts in 1 h "
                f"(alert from {thresholds.failure_rate:.0%}, counted from {thresholds.rate_min_attempts})",
                round(failure_rate, 4)),
        Finding("success_rate_1h", not rated or (hour.success_rate or 0.0) >= thresholds.success_rate, WARN,
                f"success rate {(hour.success_rate or 0.0):.0%} in 1 h (alert under {thresholds.success_rate:.0%})",
                hour.success_rate if hour.success_rate is not None else 1.0),
        Finding("pending_retries", health.total.pending_retries <= thresholds.pending_retries, WARN,
                f"{health.total.pending_retries} notifications wait for a retry (alert above "
                f"{thresholds.pending_retries})", health.total.pending_retries),
        Finding("mean_delay_1h", (hour.latency_mean_s or 0.0) <= thresholds.mean_delay_seconds, WARN,
                f"mean enqueue → sent {(hour.latency_mean_s or 0.0) / 60:.1f} min in 1 h (alert above "
                f"{thresholds.mean_delay_seconds / 60:.0f} min)", hour.latency_mean_s or 0.0),
        Finding("breakers_closed", not open_breakers, ERROR,
                f"open breaker: {', '.join(open_breakers)}" if open_breakers else "every breaker closed or half-open",
                len(open_breakers)),
        Finding("sweep_on_time", not late, ERROR,
                (f"no sweep finished for {sweep_age / 60:.0f} min" if math.isfinite(sweep_age)
                 else "no sweep finished yet") + f" while {health.total.backlog} notifications are due (the oldest "
                f"for {health.total.oldest_due_age_s / 60:.0f} min)"
                if late else f"{health.total.backlog} due; the last sweep finished in time", health.total.backlog),
    ]


CHECKS = ("failures_1h", "permanent_failures_24h", "failure_rate_1h", "success_rate_1h", "pending_retries",
          "mean_delay_1h", "breakers_closed", "sweep_on_time")


def alert_on(engine: Engine, findings: list[Finding], *, cooldown: timedelta, now: datetime | None = None) -> dict:
    """A failing check raises its alert (one per cooldown); a passing one whose alert was open recovers."""
    raised, recovered = [], []
    for finding in findings:
        key = f"notification_health:{finding.check}"
        if not finding.passed:
            if raise_alert(engine, key, "critical" if finding.severity == ERROR else "warning",
                           f"notifications: {finding.description}", {"check": finding.check, "value": finding.value},
                           cooldown=cooldown, now=now):
                raised.append(finding.check)
        elif resolve_alert(engine, key, f"notifications recovered: {finding.description}", now=now):
            recovered.append(finding.check)
    return {"raised": raised, "recovered": recovered}
