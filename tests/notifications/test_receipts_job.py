"""apply_webhook_events and webhook_events_sensor in Dagster: the sensor asks for a run only when events
wait, the job applies them and reports orphans as an alert."""

from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from nightshift.db.schema import alerts, notifications, webhook_events
from nightshift.notifications import webhooks
from nightshift.notifications.outbox import enqueue, now_utc
from pipelines.jobs.notifications import apply_webhook_events
from sensors.notifications import webhook_events_sensor
from tests.conftest import app_resources, definitions


@pytest.fixture
def url(db, monkeypatch, tmp_path):
    url = db.url.render_as_string(hide_password=False)
    monkeypatch.setenv("NIGHTSHIFT_DATABASE_URL", url)
    monkeypatch.setenv("NIGHTSHIFT_DATA_DIR", str(tmp_path / "data"))
    return url


def receipt(message_id: str, status: str) -> list[webhooks.Event]:
    body = f'{{"data": {{"messageId": "{message_id}", "status": "{status}"}}}}'.encode()
    return webhooks.wachap_events(body)


def test_sensor_requests_a_run_only_when_events_wait_and_the_job_applies_them(db, url):
    defs = definitions()
    assert defs.resolve_sensor_def("webhook_events_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_job_def("apply_webhook_events").tags["nightshift/family"] == "maintenance"
    settings = app_resources(url)["settings"].notifications
    sent = enqueue(db, settings, source_app="cargo", to="70 12 34 56", body="colis", message_type="colis_status").id
    with db.begin() as conn:
        conn.execute(notifications.update().values(status="sent", provider="wachap", provider_message_id="wachap-7"))
    with dg.instance_for_test() as instance, \
            dg.build_sensor_context(instance=instance, resources=app_resources(url)) as context:
        assert isinstance(webhook_events_sensor(context), dg.SkipReason)
        webhooks.receive(db, receipt("wachap-7", "read") + receipt("nobody", "delivered"))
        assert isinstance(webhook_events_sensor(context), dg.RunRequest)
        result = apply_webhook_events.execute_in_process(instance=instance, resources=app_resources(url))
        assert result.success
        assert result.output_for_node("apply_receipts")["applied"] == 1
        assert isinstance(webhook_events_sensor(context), dg.SkipReason)  # the orphan waits for its retry
    with db.connect() as conn:
        assert conn.execute(sa.select(notifications.c.status).where(notifications.c.id == sent)).scalar() == "read"
    # The window ends: the orphan is reported once, as an alert.
    with db.begin() as conn:
        conn.execute(webhook_events.update().where(webhook_events.c.applied_at.is_(None)).values(
            received_at=now_utc() - timedelta(hours=1), next_attempt_at=now_utc() - timedelta(seconds=1)))
    with dg.instance_for_test() as instance:
        result = apply_webhook_events.execute_in_process(instance=instance, resources=app_resources(url))
    assert result.output_for_node("apply_receipts")["orphans"] == ["nobody"]
    with db.connect() as conn:
        [alert] = conn.execute(sa.select(alerts)).all()
    assert alert.alert_key == "webhook_orphans" and alert.details == {"message_ids": ["nobody"]}
