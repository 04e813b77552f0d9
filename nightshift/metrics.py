"""Prometheus metrics (every name prefixed `nightshift_`), read from the database at scrape time by a
custom collector: any number of sweep processes report one consistent set of numbers. Served by the
webhook receiver at GET /metrics (NIGHTSHIFT_METRICS=false turns it off). Later domains add their
collectors to `registry`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from nightshift.db.engine import read_transaction, utc
from nightshift.db.schema import imports, notification_attempts, notifications, provider_breakers
from nightshift.notifications.outbox import DUE_STATUSES

BREAKER_STATES = ("closed", "half_open", "open")
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
LATENCY_WINDOW = timedelta(hours=1)


class DatabaseCollector(Collector):
    """Outbox, attempts, breakers and the import log, counted when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        n, a = notifications.c, notification_attempts.c
        with read_transaction(self.engine) as conn:
            by_status = conn.execute(sa.select(n.status, n.source_app, sa.func.count())
                                     .group_by(n.status, n.source_app)).all()
            oldest = conn.execute(sa.select(sa.func.min(n.next_attempt_at)).where(
                n.status.in_(DUE_STATUSES), n.next_attempt_at <= now)).scalar()
            outcomes = conn.execute(sa.select(a.outcome, a.provider_account, sa.func.count())
                                    .group_by(a.outcome, a.provider_account)).all()
            # The histogram's cumulative buckets, counted in the database: one row, however many attempts.
            latency = conn.execute(sa.select(
                *(sa.func.coalesce(sa.func.sum(sa.case((a.latency_ms <= bound * 1000, 1), else_=0)), 0)
                  for bound in LATENCY_BUCKETS),
                sa.func.count(), sa.func.coalesce(sa.func.sum(a.latency_ms), 0)).where(
                a.started_at >= now - LATENCY_WINDOW, a.latency_ms.is_not(None), a.outcome != "started")).one()
            breakers = conn.execute(sa.select(provider_breakers.c.provider, provider_breakers.c.provider_account,
                                              provider_breakers.c.state)).all()
            import_counts = conn.execute(sa.select(imports.c.status, sa.func.count()).group_by(imports.c.status)).all()

        gauge = GaugeMetricFamily("nightshift_notifications", "Notifications in the outbox by status and source_app.",
                                  labels=["status", "source_app"])
        for status, app, count in by_status:
            gauge.add_metric([status, app], count)
        yield gauge
        yield GaugeMetricFamily("nightshift_notifications_oldest_due_age_seconds",
                                "Age of the oldest due notification (0 when none is due).",
                                value=(now - utc(oldest)).total_seconds() if oldest is not None else 0.0)
        attempts = GaugeMetricFamily("nightshift_notification_attempts",
                                     "Send attempts kept in notification_attempts, by outcome and provider account.",
                                     labels=["outcome", "provider_account"])
        for outcome, account, count in outcomes:
            attempts.add_metric([outcome, account or "default"], count)
        yield attempts
        state = GaugeMetricFamily("nightshift_provider_breaker_state",
                                  "Circuit breaker of each provider account: 1 for its current state.",
                                  labels=["provider", "provider_account", "state"])
        for provider, account, current in breakers:
            for name in BREAKER_STATES:
                state.add_metric([provider, account, name], 1.0 if current == name else 0.0)
        yield state
        *within, count, total_ms = latency
        buckets = [(str(bound), int(n)) for bound, n in zip(LATENCY_BUCKETS, within, strict=True)]
        yield HistogramMetricFamily("nightshift_notification_send_latency_seconds",
                                    "HTTP send latency of the attempts of the last hour.",
                                    buckets=[*buckets, ("+Inf", int(count))], sum_value=float(total_ms) / 1000)
        imported = GaugeMetricFamily("nightshift_imports", "Imports in the import log by status.", labels=["status"])
        for status, count in import_counts:
            imported.add_metric([status], count)
        yield imported


def registry(engine: Engine, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    for collector in (DatabaseCollector(engine), *extra):
        found.register(collector)
    return found


def exposition(metrics: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(metrics), CONTENT_TYPE_LATEST
