"""GET /metrics of the receiver over real HTTP, parsed with prometheus_client's parser: its numbers equal
the tables', on SQLite and PostgreSQL; NIGHTSHIFT_METRICS=false turns it off; the sample Grafana dashboard
(deploy/grafana/nightshift.json) asks only for metrics, labels and label values the exposition has."""

import json
import re
from collections import defaultdict

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from nightshift import metrics
from nightshift.db.schema import imports, notification_attempts, notifications
from nightshift.notifications import breaker, sweep
from nightshift.notifications.outbox import enqueue, now_utc
from tests.conftest import PROJECT_ROOT
from tests.notifications.fake_provider import fast_settings, status, wachap_backend
from tests.notifications.live_receiver import LiveReceiver

SETTINGS = fast_settings()


def scrape(receiver: LiveReceiver) -> dict:
    answer = requests.get(f"{receiver.url}/metrics", timeout=5)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        assert family.name.startswith("nightshift_")
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def fill(db, wachap_server) -> None:
    """Sent, retried and pending rows of two apps, a temporary failure, an open breaker, a failed import."""
    for i in range(4):
        enqueue(db, SETTINGS, source_app="cargo" if i < 3 else "shop", to=f"+2237012340{i}", body="x",
                message_type="system")
    wachap_server.then(status(503))
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    enqueue(db, SETTINGS, source_app="shop", to="+22370123499", body="later", message_type="system")
    with db.begin() as conn:
        breaker._change(conn, "wachap", "chine", breaker.OPEN, "401", now_utc(), settings=SETTINGS.breaker)
        conn.execute(imports.insert().values(file_name="a.csv", sha256="0" * 64, size_bytes=1, status="failed",
                                             stage="received"))


def test_metrics_equal_the_tables(db, wachap_server):
    fill(db, wachap_server)
    receiver = LiveReceiver(db, metrics=lambda: metrics.exposition(metrics.registry(db)))
    try:
        samples = scrape(receiver)
    finally:
        receiver.close()
    with db.connect() as conn:
        by_status = conn.execute(sa.select(notifications.c.status, notifications.c.source_app, sa.func.count())
                                 .group_by(notifications.c.status, notifications.c.source_app)).all()
        outcomes = conn.execute(sa.select(notification_attempts.c.outcome, sa.func.count())
                                .group_by(notification_attempts.c.outcome)).all()
    exported = {(dict(labels)["status"], dict(labels)["source_app"]): value
                for (name, labels), value in samples.items() if name == "nightshift_notifications"}
    assert exported == {(s, app): float(count) for s, app, count in by_status}
    assert exported[("sent", "cargo")] + exported.get(("sent", "shop"), 0) == 3
    attempts = {dict(labels)["outcome"]: value for (name, labels), value in samples.items()
                if name == "nightshift_notification_attempts"}
    assert attempts == {outcome: float(count) for outcome, count in outcomes} == {"sent": 3.0, "temporary": 1.0}
    assert samples[("nightshift_notification_send_latency_seconds_count", ())] == 4.0
    assert samples[("nightshift_notification_send_latency_seconds_bucket", (("le", "+Inf"),))] == 4.0
    with db.connect() as conn:
        latencies = conn.execute(sa.select(notification_attempts.c.latency_ms)).scalars().all()
    for bound in metrics.LATENCY_BUCKETS:
        assert samples[("nightshift_notification_send_latency_seconds_bucket", (("le", str(bound)),))] \
            == sum(1 for ms in latencies if ms <= bound * 1000)
    assert samples[("nightshift_notification_send_latency_seconds_sum", ())] == pytest.approx(sum(latencies) / 1000)
    assert samples[("nightshift_notifications_oldest_due_age_seconds", ())] >= 0.0
    assert samples[("nightshift_imports", (("status", "failed"),))] == 1.0
    breakers = {(dict(labels)["provider_account"], dict(labels)["state"]): value
                for (name, labels), value in samples.items() if name == "nightshift_provider_breaker_state"}
    assert breakers == {("chine", "open"): 1.0, ("chine", "closed"): 0.0, ("chine", "half_open"): 0.0}


def test_metrics_can_be_turned_off(db):
    receiver = LiveReceiver(db, metrics=lambda: metrics.exposition(metrics.registry(db)), metrics_enabled=False)
    try:
        assert requests.get(f"{receiver.url}/metrics", timeout=5).status_code == 404
    finally:
        receiver.close()


DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "nightshift.json"
SELECTOR = re.compile(r"\b(nightshift_[a-z0-9_]+)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its query variables."""
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return queries + [variable["definition"] for variable in dashboard["templating"]["list"]
                      if variable["type"] == "query"]


def test_the_grafana_dashboard_uses_only_what_metrics_exports(db, wachap_server):
    fill(db, wachap_server)
    body, _ = metrics.exposition(metrics.registry(db))
    labels: dict[str, dict[str, set[str]]] = {}  # sample name → label → values
    family_of: dict[str, str] = {}  # sample name (…_bucket, …_sum) → family name
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            family_of[sample.name] = family.name
            for label, value in sample.labels.items():
                labels.setdefault(sample.name, defaultdict(set))[label].add(value)
            labels.setdefault(sample.name, defaultdict(set))

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    [datasource] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == f"${{{datasource['name']}}}", panel["title"]
    queries = dashboard_queries(dashboard)
    used = set()
    for query in queries:
        selectors = SELECTOR.findall(query)
        assert selectors, query
        for name, matchers in selectors:
            assert name in labels, f"{name} (in {query}) is not in the /metrics exposition"
            used.add(name)
            for label, operator, value in MATCHER.findall(matchers):
                assert label in labels[name], f"{name} has no label {label} (in {query})"
                if "$" not in value and operator in ("=", "=~"):
                    assert set(value.split("|")) <= labels[name][label], f"{name}{{{label}{operator}{value!r}}}"
        present = set().union(*(labels[name] for name, _ in selectors))
        for grouped in GROUPING.findall(query):
            assert {g.strip() for g in grouped.split(",")} <= present, query
    # Every family the collector exports has a panel.
    assert {family_of[name] for name in used} == set(family_of.values())
