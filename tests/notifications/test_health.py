"""Notification health from the tables, on SQLite and PostgreSQL: per-app figures count only that app's
rows; a full outage trips the old thresholds; a late sweep and an open breaker are errors; the thresholds
of `notifications.health:` are the ones the asset checks and the alerts sensor compare with."""

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from assets.notifications import notification_health
from nightshift.config import load_settings
from nightshift.db.schema import alerts, notifications
from nightshift.notification_settings import HealthThresholds
from nightshift.notifications import breaker, health, receipts, sweep, webhooks
from nightshift.notifications.outbox import enqueue, now_utc
from resources import shared_resources
from resources.alerting import Alerting
from resources.whatsapp import WhatsAppProvider
from sensors.alerts import alerts_sensor
from tests.conftest import app_resources
from tests.notifications.fake_provider import fast_settings, status, wachap_backend

SETTINGS = fast_settings()
DEFAULTS = HealthThresholds()


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
    findings = health.evaluate(report, DEFAULTS, last_sweep_finished_at=now_utc())
    assert failing(findings) == {"failures_1h": "ERROR", "failure_rate_1h": "ERROR", "success_rate_1h": "WARN",
                                 "breakers_closed": "ERROR"}
    # Rows due for a minute after a quiet spell: not late, whenever the last sweep finished.
    with db.begin() as conn:
        conn.execute(notifications.update().values(next_attempt_at=now_utc() - timedelta(minutes=1)))
    assert "sweep_on_time" not in failing(health.evaluate(health.report(db), DEFAULTS, now_utc() - timedelta(hours=3)))
    # Rows due for 20 minutes and no sweep finished for 20 minutes (or ever): late.
    with db.begin() as conn:
        conn.execute(notifications.update().values(next_attempt_at=now_utc() - timedelta(minutes=20)))
    late = health.evaluate(health.report(db), DEFAULTS, now_utc() - timedelta(minutes=20))
    assert "sweep_on_time" in failing(late)
    assert "sweep_on_time" in failing(health.evaluate(health.report(db), DEFAULTS, None))
    assert "sweep_on_time" not in failing(health.evaluate(health.report(db), DEFAULTS, now_utc()))


def test_quiet_outbox_passes_every_check(db):
    assert failing(health.evaluate(health.report(db), DEFAULTS, None)) == {}


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


def configured(db, tmp_path, yaml: str) -> dict:
    """The resources of a process whose NIGHTSHIFT_CONFIG file holds `yaml`, on the test's database."""
    # A file per call: one settings object may be read again after another call wrote its own.
    config = tmp_path / f"nightshift-{len(list(tmp_path.glob('nightshift-*.yaml')))}.yaml"
    config.write_text(yaml, encoding="utf-8")
    settings = load_settings({"NIGHTSHIFT_DATABASE_URL": db.url.render_as_string(hide_password=False),
                              "NIGHTSHIFT_CONFIG": str(config), "NIGHTSHIFT_DATA_DIR": str(tmp_path / "data")})
    shared = shared_resources(settings)
    whatsapp = WhatsAppProvider(settings=settings)
    return {**shared, "whatsapp": whatsapp, "alerting": Alerting(settings=settings, whatsapp=whatsapp)}


def failed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
    return {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}


def test_configured_thresholds_trip_the_asset_checks_and_the_alerts_sensor(db, tmp_path, wachap_server):
    wachap_server.default = lambda request: status(503)
    send(db, "cargo", 3)  # three failures: under the default 20
    sweep.run_sweep(db, SETTINGS, wachap_backend(wachap_server))
    lowered = configured(db, tmp_path, "notifications:\n  health:\n    failures_1h: 3\n    pending_retries: 2\n")
    with dg.instance_for_test() as instance:
        result = dg.materialize([notification_health], instance=instance, resources=configured(db, tmp_path, "{}\n"))
        assert failed_checks(result) == set()
        result = dg.materialize([notification_health], instance=instance, resources=lowered)
        assert failed_checks(result) == {"failures_1h", "pending_retries"}
        # One run may still set its own threshold over the configured one.
        result = dg.materialize([notification_health], instance=instance, resources=lowered, run_config={
            "ops": {"notification_health": {"config": {"failures_1h": 4}}}})
        assert failed_checks(result) == {"pending_retries"}
        bad = dg.materialize([notification_health], instance=instance, resources=lowered, raise_on_error=False,
                             run_config={"ops": {"notification_health": {"config": {"failure_rate": 2.0}}}})
        assert not bad.success
        [failure] = [event for event in bad.all_events if event.is_step_failure]
        assert "ops.notification_health.config.failure_rate" in failure.step_failure_data.error.message

    # The alerts sensor runs the same checks every minute against the same configured thresholds.
    with db.begin() as conn:
        conn.execute(alerts.delete())
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance, resources=lowered) as context:
        result = alerts_sensor(context)
    assert "notification_health:failures_1h" in result.skip_message
    with db.connect() as conn:
        keys = set(conn.execute(sa.select(alerts.c.alert_key)).scalars())
    assert keys == {"notification_health:failures_1h", "notification_health:pending_retries"}


def test_latency_and_receipts_fall_in_the_windows_they_happened_in(db):
    now = now_utc()
    recent, older = send(db, "cargo", 2)
    with db.begin() as conn:
        conn.execute(notifications.update().where(notifications.c.id == recent).values(
            status="delivered", created_at=now - timedelta(minutes=10), sent_at=now - timedelta(minutes=5),
            delivered_at=now - timedelta(minutes=4)))
        conn.execute(notifications.update().where(notifications.c.id == older).values(
            status="read", created_at=now - timedelta(hours=3, minutes=20), sent_at=now - timedelta(hours=3),
            delivered_at=now - timedelta(hours=2), read_at=now - timedelta(minutes=30)))
    report = health.report(db, now=now)
    hour, day = report.apps["cargo"].windows[1], report.apps["cargo"].windows[24]
    assert (hour.delivered, hour.read, hour.delivery_rate, hour.latency_mean_s) == (1, 1, 1.0, 300.0)
    assert (day.delivered, day.read, day.delivery_rate) == (2, 1, 1.0)
    assert (day.latency_p50_s, day.latency_p95_s, day.latency_mean_s) == (300.0, 1200.0, 750.0)
    assert report.total.windows[24] == day and report.accounts["default"].windows[24] == day
