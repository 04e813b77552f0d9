"""Notification health from the tables, on SQLite and PostgreSQL: per-app figures count only that app's
rows; a full outage trips the old thresholds; a late sweep and an open breaker are errors."""

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from assets.notifications import notification_health
from nightshift.db.schema import alerts, notifications
from nightshift.notifications import breaker, health, receipts, sweep, webhooks
from nightshift.notifications.outbox import enqueue, now_utc
from resources.alerting import Alerting
from resources.whatsapp import WhatsAppProvider
from tests.conftest import app_resources
from tests.notifications.fake_provider import fast_settings, status, wachap_backend

SETTINGS = fast_settings()


def send(db, app: str, n: int) -> list[int]:
    return [enqueue(db, SETTINGS, source_app=app, to=f"+2237012{n:02d}{i:02d}", body=f"colis {i}",
                    message_type="colis_status").id for i in range(n)]


def failing(findings: list[health.Finding]) -> dict[str, str]:
    return {f.check: f.severity for f in findings if not f.passed}


def test_per_app_figures_count_only_that_apps_rows(db, wachap_server):
    send(db, "cargo", 4)
    send(db, "shop", 2)
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    with db.connect() as conn:
        shop_ids = conn.execute(sa.select(notifications.c.provider_message_id)
                                .where(notifications.c.source_app == "shop")).scalars().all()
    body = ('[' + ",".join(f'{{"messageId": "{m}", "status": "delivered"}}' for m in shop_ids) + ']').encode()
    webhooks.receive(db, webhooks.wachap_events(body))
    receipts.apply_pending(db, SETTINGS)
    wachap_server.default = lambda request: status(503)
    send(db, "cargo", 1)
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))

    shop = health.report(db, source_app="shop")
    assert set(shop.apps) == {"shop"}
    hour = shop.total.windows[1]
    assert (hour.attempts, hour.sent, hour.delivered, hour.temporary_failures) == (2, 2, 2, 0)
    assert (hour.success_rate, hour.delivery_rate) == (1.0, 1.0)
    admin = health.report(db)
    assert set(admin.apps) == {"cargo", "shop"}
    cargo = admin.apps["cargo"].windows[24]
    assert (cargo.attempts, cargo.sent, cargo.temporary_failures, cargo.delivered) == (5, 4, 1, 0)
    assert cargo.success_rate == 0.8 and cargo.latency_p50_s is not None
    assert admin.total.windows[1].attempts == 7 and admin.apps["cargo"].pending_retries == 1
    assert admin.accounts["default"].windows[1].attempts == 7

    # The admin sees every breaker, also of an account no row went through; an app only its accounts'.
    with db.begin() as conn:
        breaker._change(conn, "wachap", "chine", breaker.OPEN, "401", now_utc(), settings=SETTINGS.breaker)
    assert health.report(db).total.breakers["chine"] == "open"
    assert "chine" not in health.report(db, source_app="shop").total.breakers


def test_a_full_outage_trips_the_thresholds(db, wachap_server):
    wachap_server.default = lambda request: status(503)
    send(db, "cargo", 25)
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    report = health.report(db)
    assert report.total.windows[1].temporary_failures == 25
    assert report.total.breakers == {"default": "open"}
    findings = health.evaluate(report, health.Thresholds(), last_sweep_finished_at=now_utc())
    assert failing(findings) == {"failures_1h": "ERROR", "failure_rate_1h": "ERROR", "success_rate_1h": "WARN",
                                 "breakers_closed": "ERROR"}
    # Rows due and no sweep for 20 minutes: late.
    with db.begin() as conn:
        conn.execute(notifications.update().values(next_attempt_at=now_utc() - timedelta(minutes=1)))
    late = health.evaluate(health.report(db), health.Thresholds(), now_utc() - timedelta(minutes=20))
    assert "sweep_on_time" in failing(late)
    assert "sweep_on_time" in failing(health.evaluate(health.report(db), health.Thresholds(), None))


def test_quiet_outbox_passes_every_check(db):
    assert failing(health.evaluate(health.report(db), health.Thresholds(), None)) == {}


def test_the_asset_reports_stable_keys_a_table_per_app_and_its_checks(db, wachap_server):
    wachap_server.default = lambda request: status(503)
    send(db, "cargo", 25)
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    url = db.url.render_as_string(hide_password=False)
    with dg.instance_for_test() as instance:
        shared = app_resources(url)
        whatsapp = WhatsAppProvider(settings=shared["settings"])
        alerting = Alerting(settings=shared["settings"], whatsapp=whatsapp)  # no channel: alerts only recorded
        result = dg.materialize([notification_health], instance=instance,
                                resources={**shared, "whatsapp": whatsapp, "alerting": alerting})
        assert result.success
        [materialization] = result.asset_materializations_for_node("notification_health")
        metadata = materialization.metadata
        assert metadata["temporary_failures_1h"].value == 25 and metadata["open_breakers"].value == 1
        assert "| attempts | 25 | 25 |" in metadata["app:cargo"].value
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert set(checks) == set(health.CHECKS)
        assert not checks["failures_1h"].passed and checks["failures_1h"].severity == dg.AssetCheckSeverity.ERROR
        assert checks["permanent_failures_24h"].passed
        assert metadata["alerts_sent"].value == 0
    with db.connect() as conn:
        recorded = conn.execute(sa.select(alerts.c.alert_key, alerts.c.sent_at)).all()
    assert {key for key, _ in recorded} == {f"notification_health:{c}" for c in
                                            ("failures_1h", "failure_rate_1h", "success_rate_1h", "breakers_closed")}
    assert all(sent_at is None for _, sent_at in recorded)  # waiting for a channel
