"""notification_health: the outbox's health per source_app and per provider account (hourly, and on
demand), with the thresholds of `notifications.health:` as asset checks. One asset for every app (apps
come and go): the metadata carries the whole outbox's figures under stable keys and one table per app."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy.engine import Engine

from nightshift.config import Settings
from nightshift.notification_settings import HealthThresholds, NotificationConfigError, health_thresholds
from nightshift.notifications import health
from resources.alerting import Alerting
from resources.database import Database
from resources.families import family_tags

SWEEP_JOB = "notification_sweep"
SEVERITY = {health.ERROR: dg.AssetCheckSeverity.ERROR, health.WARN: dg.AssetCheckSeverity.WARN}
WINDOW_FIELDS = ("attempts", "sent", "delivered", "read", "temporary_failures", "permanent_failures", "success_rate",
                 "delivery_rate", "latency_p50_s", "latency_p95_s", "latency_mean_s")
DEFAULTS = HealthThresholds()
CHECK_DESCRIPTIONS = {
    "failures_1h": f"Fewer failed attempts in 1 h than notifications.health.failures_1h ({DEFAULTS.failures_1h} "
                   "unless configured).",
    "permanent_failures_24h": "Fewer permanent failures in 24 h than notifications.health.permanent_24h "
                              f"({DEFAULTS.permanent_24h} unless configured).",
    "failure_rate_1h": f"Failure rate in 1 h under notifications.health.failure_rate ({DEFAULTS.failure_rate:.0%} "
                       "unless configured).",
    "success_rate_1h": "Success rate in 1 h at least notifications.health.success_rate "
                       f"({DEFAULTS.success_rate:.0%} unless configured).",
    "pending_retries": "At most notifications.health.pending_retries notifications waiting for a retry "
                       f"({DEFAULTS.pending_retries} unless configured).",
    "mean_delay_1h": "Mean enqueue → sent delay in 1 h at most notifications.health.mean_delay_seconds "
                     f"({DEFAULTS.mean_delay_seconds / 60:.0f} min unless configured).",
    "breakers_closed": "No provider account's circuit breaker is open.",
    "sweep_on_time": "No notification due for longer than notifications.health.sweep_late_seconds "
                     f"({DEFAULTS.sweep_late_seconds / 60:.0f} min unless configured) without a sweep finishing "
                     "within it.",
}


class HealthConfig(dg.Config):
    """Thresholds for this run only, over the configured `notifications.health:` (unset: the configured one)."""

    failures_1h: int | None = None
    permanent_24h: int | None = None
    failure_rate: float | None = None
    success_rate: float | None = None
    rate_min_attempts: int | None = None
    pending_retries: int | None = None
    mean_delay_seconds: float | None = None
    sweep_late_seconds: float | None = None

    def thresholds(self, configured: HealthThresholds) -> HealthThresholds:
        given = {name: value for name, value in self.model_dump().items() if value is not None}
        try:
            return health_thresholds(given, "ops.notification_health.config", configured)
        except NotificationConfigError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None


def last_sweep_finished(instance: dg.DagsterInstance) -> datetime | None:
    records = instance.get_run_records(dg.RunsFilter(job_name=SWEEP_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                       limit=1)
    end = records[0].end_time if records else None
    return datetime.fromtimestamp(end, UTC) if end else None


def check_health(engine: Engine, instance: dg.DagsterInstance, thresholds: HealthThresholds,
                 cooldown: timedelta) -> tuple[health.Health, list[health.Finding], dict]:
    """The figures, the checks against `thresholds`, and the alerts they raised or recovered (one per
    cooldown): what the hourly asset and the every-minute alerts sensor both evaluate."""
    report = health.report(engine)
    findings = health.evaluate(report, thresholds, last_sweep_finished(instance))
    return report, findings, health.alert_on(engine, findings, cooldown=cooldown)


def _number(value: float | int | None) -> dg.MetadataValue:
    if value is None:
        return dg.MetadataValue.null()
    return dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(float(value))


def _shown(value: float | int | None) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def scope_table(scope: health.Scope) -> str:
    hours = sorted(scope.windows)
    lines = ["| | " + " | ".join(f"{h} h" for h in hours) + " |", "|---|" + "---|" * len(hours)]
    for name in WINDOW_FIELDS:
        lines.append(f"| {name} | " + " | ".join(_shown(getattr(scope.windows[h], name)) for h in hours) + " |")
    breakers = ", ".join(f"{a}: {s}" for a, s in sorted(scope.breakers.items())) or "none"
    lines.append(f"\nbacklog {scope.backlog}, oldest due {scope.oldest_due_age_s:.0f} s, pending retries "
                 f"{scope.pending_retries}; breakers: {breakers}")
    return "\n".join(lines)


def health_metadata(report: health.Health) -> dict[str, dg.MetadataValue]:
    total = report.total
    metadata: dict[str, dg.MetadataValue] = {}
    for h, window in sorted(total.windows.items()):
        for name in WINDOW_FIELDS:
            metadata[f"{name}_{h}h"] = _number(getattr(window, name))
    metadata["backlog"] = dg.MetadataValue.int(total.backlog)
    metadata["oldest_due_age_s"] = dg.MetadataValue.float(total.oldest_due_age_s)
    metadata["pending_retries"] = dg.MetadataValue.int(total.pending_retries)
    metadata["open_breakers"] = dg.MetadataValue.int(sum(s == "open" for s in total.breakers.values()))
    metadata["apps"] = dg.MetadataValue.int(len(report.apps))
    for name, scope in sorted(report.apps.items()):
        metadata[f"app:{name}"] = dg.MetadataValue.md(scope_table(scope))
    metadata["accounts"] = dg.MetadataValue.md("\n\n".join(
        f"**{name}**\n\n{scope_table(scope)}" for name, scope in sorted(report.accounts.items())) or "none yet")
    return metadata


@dg.asset(
    name="notification_health",
    group_name="notifications",
    check_specs=[dg.AssetCheckSpec(name, asset="notification_health", description=CHECK_DESCRIPTIONS[name])
                 for name in health.CHECKS],
    description="Notification figures per source_app and provider account over 1 h and 24 h (attempts, sent, "
                "delivered, read, failures, rates, latency), backlog and breakers, checked against the thresholds.",
)
def notification_health(context: dg.AssetExecutionContext, config: HealthConfig, database: Database,
                        alerting: Alerting, settings: dg.ResourceParam[Settings]) -> dg.MaterializeResult:
    # A failing check alerts once per cooldown; a check that passes again sends its recovery.
    report, findings, alerted = check_health(database.engine, context.instance,
                                             config.thresholds(settings.notifications.health), alerting.cooldown)
    failing = [f.check for f in findings if not f.passed]
    sent = alerting.dispatch(database.engine)
    context.log.info(f"{len(report.apps)} app(s), {len(report.accounts)} account(s); failing checks: "
                     f"{', '.join(failing) or 'none'}; alerts raised {alerted['raised'] or 'none'}, recovered "
                     f"{alerted['recovered'] or 'none'}, {len(sent)} sent")
    metadata = health_metadata(report)
    metadata["alerts_sent"] = dg.MetadataValue.int(len(sent))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[dg.AssetCheckResult(check_name=f.check, passed=f.passed, severity=SEVERITY[f.severity],
                                           description=f.description, metadata={"value": _number(f.value)})
                       for f in findings])


notification_health_job = dg.define_asset_job(
    "notification_health_job", selection=dg.AssetSelection.assets(notification_health),
    tags=family_tags("maintenance"), description="Materialise notification_health and run its checks.")
