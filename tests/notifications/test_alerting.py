"""Alerts end to end against a real SMTP server (aiosmtpd) and a real local WhatsApp provider, on SQLite
and PostgreSQL: a full outage trips the checks and sends one email per key per cooldown, then a recovery;
the admin's WhatsApp goes through another account than the failing one; breakers, failed imports and
failed runs raise alerts from the tables."""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.notifications import notification_health
from nightshift import monitoring
from nightshift.alerts import dispatch, list_alerts, raise_alert
from nightshift.db.schema import alerts, imports, notification_attempts, provider_breakers
from nightshift.notification_settings import ProviderAccount
from nightshift.notifications import breaker, sweep
from nightshift.notifications.admin_alerts import NoAccountForAlert, WhatsAppAlertChannel
from nightshift.notifications.outbox import enqueue, now_utc
from resources.alerting import Alerting
from resources.whatsapp import WhatsAppProvider
from sensors.alerts import alerts_sensor
from tests.conftest import app_resources
from tests.notifications.fake_provider import fast_settings, status, wachap_backend
from tests.notifications.smtp_server import SmtpServer

SETTINGS = fast_settings()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


def resources(db, smtp: SmtpServer, **alerting) -> dict:
    shared = app_resources(db.url.render_as_string(hide_password=False))
    whatsapp = WhatsAppProvider(settings=shared["settings"])
    return {**shared, "whatsapp": whatsapp,
            "alerting": Alerting(settings=shared["settings"], whatsapp=whatsapp, smtp_host="127.0.0.1",
                                 smtp_port=str(smtp.port), smtp_to="admin@example.org", **alerting)}


def outage(db, server, n: int = 25) -> None:
    server.default = lambda request: status(503)
    for i in range(n):
        enqueue(db, SETTINGS, source_app="cargo", to=f"+223701234{i:02d}", body="colis", message_type="colis_status")
    sweep.run_sweep(db, SETTINGS, wachap_backend(server))


def test_an_outage_sends_one_email_per_check_per_cooldown_then_a_recovery(db, smtp, wachap_server):
    outage(db, wachap_server)
    with dg.instance_for_test() as instance:
        for _ in range(2):
            assert dg.materialize([notification_health], instance=instance, resources=resources(db, smtp)).success
        first = sorted(smtp.subjects)
        assert len(first) == 4 and all(subject.startswith("[nightshift] CRITICAL") or "WARNING" in subject
                                       for subject in first)
        assert any("failed attempts in 1 h" in subject for subject in first)
        # The outage is over: the failures are older than an hour, the breaker closed.
        with db.begin() as conn:
            conn.execute(notification_attempts.update().values(started_at=now_utc() - timedelta(hours=2)))
            conn.execute(provider_breakers.update().values(state="closed"))
        for _ in range(2):
            assert dg.materialize([notification_health], instance=instance, resources=resources(db, smtp)).success
    recoveries = [subject for subject in smtp.subjects if subject.startswith("[nightshift] RECOVERED")]
    assert len(smtp.subjects) == 8 and len(recoveries) == 4
    keys = {alert.alert_key for alert in list_alerts(db)}
    assert "notification_health:failures_1h:recovered" in keys


def test_cooldown_holds_across_dispatchers_and_ends_after_the_cooldown(db, smtp):
    channel = Alerting(settings=app_resources(db.url.render_as_string(hide_password=False))["settings"],
                       whatsapp=WhatsAppProvider(settings=SETTINGS), smtp_host="127.0.0.1", smtp_port=str(smtp.port),
                       smtp_to="admin@example.org").channels(db)
    start = now_utc()
    assert raise_alert(db, "k", "critical", "down", now=start)
    assert not raise_alert(db, "k", "critical", "still down", now=start + timedelta(minutes=30))
    assert len(dispatch(db, channel)) == 1 and dispatch(db, channel) == []
    assert raise_alert(db, "k", "critical", "down again", now=start + timedelta(minutes=61))
    dispatch(db, channel, now=start + timedelta(minutes=61))
    assert len(smtp.subjects) == 2
    [latest, _] = list_alerts(db)
    assert latest.channels == "email" and latest.sent_at is not None


def test_whatsapp_alert_goes_through_another_account_never_an_open_one(db, wachap_server):
    settings = fast_settings(accounts=(ProviderAccount("mali", wachap_account_id="acc-mali"),
                                       ProviderAccount("chine", wachap_account_id="acc-chine")))
    channel = WhatsAppAlertChannel(db, settings, wachap_backend(wachap_server), "+22370123456")
    with db.begin() as conn:
        breaker._change(conn, "wachap", "chine", breaker.OPEN, "test", now_utc(), settings=settings.breaker)
    assert channel.candidates("mali") == ["default"]
    raise_alert(db, "breaker:wachap:mali", "critical", "mali is down", {"provider_account": "mali"})
    [sent] = dispatch(db, [channel])
    assert sent["channels"] == ["whatsapp"]
    [request] = wachap_server.sends()
    assert request["json"]["data"]["accountId"] == "acc-uuid-1"  # the default account, not mali nor chine
    assert "mali is down" in request["json"]["data"]["content"]
    assert WhatsAppAlertChannel(db, settings, wachap_backend(wachap_server), "+22370123456",
                                "mali").candidates("default") == ["mali"]
    with db.begin() as conn:
        breaker._change(conn, "wachap", "default", breaker.OPEN, "test", now_utc(), settings=settings.breaker)
    with pytest.raises(NoAccountForAlert):
        channel.send(list_alerts(db)[0])


def test_tables_raise_breaker_and_import_alerts(db):
    cursor = monitoring.latest(db)
    with db.begin() as conn:
        breaker._change(conn, "wachap", "mali", breaker.OPEN, "401", now_utc(), settings=SETTINGS.breaker)
        conn.execute(imports.insert().values(file_name="clients.csv", sha256="0" * 64, size_bytes=1, status="failed",
                                             stage="validated", finished_at=now_utc()))
    cursor, changed = monitoring.evaluate(db, cursor, cooldown=timedelta(hours=1))
    assert changed == {"raised": ["breaker:wachap:mali", "import_failed"], "recovered": []}
    assert monitoring.evaluate(db, cursor, cooldown=timedelta(hours=1))[1] == {"raised": [], "recovered": []}
    with db.begin() as conn:
        breaker._change(conn, "wachap", "mali", breaker.CLOSED, "probe", now_utc(), settings=SETTINGS.breaker)
    assert monitoring.evaluate(db, cursor, cooldown=timedelta(hours=1))[1]["recovered"] == ["breaker:wachap:mali"]


def test_alerts_sensor_alerts_failed_runs_and_sends(db, smtp):
    @dg.op
    def boom() -> None:
        raise RuntimeError("boom")

    @dg.job
    def broken_job() -> None:
        boom()

    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources(db, smtp)) as context:
            alerts_sensor(context)  # the first tick starts from now
            for _ in range(3):
                assert not broken_job.execute_in_process(instance=instance, raise_on_error=False).success
            result = alerts_sensor(context)
    assert "failed jobs: broken_job" in result.skip_message and "sent 1 alert" in result.skip_message
    with db.connect() as conn:
        assert conn.execute(sa.select(alerts.c.alert_key)).scalars().all() == ["run_failure:broken_job"]
    [subject] = smtp.subjects  # three failures, one alert within the cooldown
    assert subject.startswith("[nightshift] WARNING: Run ") and subject.endswith("of broken_job failed")


def test_an_interrupted_import_raises_the_import_alert_like_a_failed_one(db):
    cursor = monitoring.latest(db)
    with db.begin() as conn:
        conn.execute(imports.insert().values(file_name="clients.csv", sha256="0" * 64, size_bytes=1,
                                             status="interrupted", stage="received", failure_kind="transient",
                                             finished_at=now_utc()))
    _, changed = monitoring.evaluate(db, cursor, cooldown=timedelta(hours=1))
    assert changed == {"raised": ["import_failed"], "recovered": []}
