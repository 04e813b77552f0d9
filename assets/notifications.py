"""notification_health: the outbox's health per source_app and per provider account (hourly, and on
demand), with the old health check's thresholds as asset checks. One asset for every app (apps come and
go): the metadata carries the whole outbox's figures under stable keys and one table per app."""

from dataclasses import fields
from datetime import UTC, datetime

import dagster as dg

from nightshift.notifications import health
from resources.alerting import Alerting
from resources.database import Database
from resources.families import family_tags

SWEEP_JOB = "notification_sweep"
SEVERITY = {health.ERROR: dg.AssetCheckSeverity.ERROR, health.WARN: dg.AssetCheckSeverity.WARN}
WINDOW_FIELDS = ("attempts", "sent", "delivered", "read", "temporary_failures", "permanent_failures", "success_rate",
                 "delivery_rate", "latency_p50_s", "latency_p95_s", "latency_mean_s")
CHECK_DESCRIPTIONS = {
    "failures_1h": "Fewer failed attempts in 1 h than the threshold (20).",
    "permanent_failures_24h": "Fewer permanent failures in 24 h than the threshold (5).",
    "failure_rate_1h": "Failure rate in 1 h under the threshold (50 %).",
    "success_rate_1h": "Success rate in 1 h at least the threshold (90 %).",
    "pending_retries": "At most the threshold (100) of notifications waiting for a retry.",
    "mean_delay_1h": "Mean enqueue → sent delay in 1 h at most the threshold (30 min).",
    "breakers_closed": "No provider account's circuit breaker is open.",
    "sweep_on_time": "A sweep finished within the threshold (15 min) whenever notifications are due.",
}


class HealthConfig(dg.Config):
    """The thresholds (defaults: the old health check's)."""

    failures_1h: int = health.Thresholds.failures_1h
    permanent_24h: int = health.Thresholds.permanent_24h
    failure_rate: float = health.Thresholds.failure_rate
    success_rate: float = health.Thresholds.success_rate
    rate_min_attempts: int = health.Thresholds.rate_min_attempts
    pending_retries: int = health.Thresholds.pending_retries
    mean_delay_seconds: float = health.Thresholds.mean_delay_seconds
    sweep_late_seconds: float = health.Thresholds.sweep_late_seconds

    def thresholds(self) -> health.Thresholds:
        return health.Thresholds(**{f.name: getattr(self, f.name) for f in fields(health.Thresholds)})


def last_sweep_finished(instance: dg.DagsterInstance) -> datetime | None:
    records = instance.get_run_records(dg.RunsFilter(job_name=SWEEP_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                       limit=1)
    end = records[0].end_time if records else None
    return datetime.fromtimestamp(end, UTC) if end else None


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
                        alerting: Alerting) -> dg.MaterializeResult:
    report = health.report(database.engine)
    findings = health.evaluate(report, config.thresholds(), last_sweep_finished(context.instance))
    failing = [f.check for f in findings if not f.passed]
    # A failing check alerts once per cooldown; a check that passes again sends its recovery.
    alerted = health.alert_on(database.engine, findings, cooldown=alerting.cooldown)
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
